package main

// resp.go is the Redis client under redisStore: RESP2, the Redis wire protocol
// (https://redis.io/docs/latest/develop/reference/protocol-spec/), on one connection, and a
// small pool of such connections.
//
// The shape follows redigo's redis/conn.go: a command is written only as an array of bulk
// strings (so no byte of a key or value can be taken for protocol), a reply is read by its
// first byte and every line must end in CRLF, a server error reply is a value (redisError)
// distinct from I/O and protocol errors, and any I/O or protocol error marks the connection
// broken so that it never returns to the pool. Unlike redigo, every length a server announces
// is checked against a cap before anything is allocated, so a hostile or confused server
// cannot make us allocate without bound, recurse without end, or panic.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

const (
	// maxLineLen bounds a status, error, integer or length line, CRLF included. It is also the
	// size of the read buffer, so a longer line fails inside bufio without allocating. Redis's
	// status and error lines are short sentences, and a length line has at most 20 bytes.
	maxLineLen = 4096
	// maxBulkLen bounds one bulk string. The values this service keeps are codes, ids and small
	// JSON documents; a megabyte (the size of the largest request body the service accepts)
	// already means a wrong key or a wrong server.
	maxBulkLen = 1 << 20
	// maxArrayLen bounds the elements of one array. The largest reply we expect has two.
	maxArrayLen = 1024
	// maxNesting bounds how deeply arrays may nest, so a reply cannot make us recurse deeply.
	maxNesting = 4
	// maxReplyBytes bounds what a whole reply may make us hold: every byte read, plus
	// arraySlotCost for each array element allocated. Without it, 1024 elements of 1 MiB each
	// would be within the other caps.
	maxReplyBytes = 2 << 20
	// arraySlotCost is the size of one element of []any on 64-bit platforms.
	arraySlotCost = 16
)

// errProtocol marks a reply that breaks RESP2 or the caps above, or that does not fit the
// command it answers. The connection it came from is broken.
var errProtocol = errors.New("redis protocol error")

// aLongTimeAgo returns a deadline in the past, which makes a blocked read or write return at
// once (net/http uses the same trick to interrupt a connection).
func aLongTimeAgo() time.Time { return time.Unix(1, 0) }

// redisError is an error reply ("-ERR ...", "-WRONGPASS ..."). The server understood the
// command and refused it; the connection stays in step and usable.
type redisError string

func (e redisError) Error() string { return string(e) }

func protocolErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errProtocol}, args...)...)
}

// redisPool is a small pool of connections to one Redis server.
type redisPool struct {
	cfg            redisConfig
	tlsConfig      *tls.Config // nil for redis://
	dialTimeout    time.Duration
	commandTimeout time.Duration
	dial           func(ctx context.Context) (net.Conn, error) // replaced in tests

	// slots holds one token for each command in progress, so at most PoolSize connections are
	// busy. idle holds the open connections nobody uses; a broken one never goes back. A new
	// connection is dialed only when none is idle, so at most PoolSize are open at all.
	slots chan struct{}
	idle  chan *respConn

	mu     sync.Mutex // orders put against close
	closed bool
}

func newRedisPool(cfg redisConfig, opts redisOptions) *redisPool {
	poolSize := orDefault(opts.PoolSize, defaultRedisPoolSize)
	p := &redisPool{
		cfg:            cfg,
		dialTimeout:    orDefault(opts.DialTimeout, defaultRedisDialTimeout),
		commandTimeout: orDefault(opts.CommandTimeout, defaultRedisCommandTimeout),
		slots:          make(chan struct{}, poolSize),
		idle:           make(chan *respConn, poolSize),
	}
	if cfg.useTLS {
		if opts.TLSConfig != nil {
			p.tlsConfig = opts.TLSConfig.Clone()
		} else {
			p.tlsConfig = &tls.Config{}
		}
		if p.tlsConfig.ServerName == "" {
			p.tlsConfig.ServerName = cfg.host
		}
		// TLS 1.2 is the oldest version without known practical attacks (RFC 8996 deprecates
		// 1.0 and 1.1), and Redis supports 1.2 and 1.3.
		if p.tlsConfig.MinVersion < tls.VersionTLS12 {
			p.tlsConfig.MinVersion = tls.VersionTLS12
		}
	}
	p.dial = p.dialNet
	return p
}

// orDefault returns v, or def when v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (p *redisPool) dialNet(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: p.dialTimeout}
	if p.tlsConfig == nil {
		return d.DialContext(ctx, "tcp", p.cfg.addr)
	}
	return (&tls.Dialer{NetDialer: d, Config: p.tlsConfig}).DialContext(ctx, "tcp", p.cfg.addr)
}

// close closes the idle connections, and the busy ones as they come back. Later commands
// fail with errStoreClosed.
func (p *redisPool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	for {
		select {
		case c := <-p.idle:
			c.close()
		default:
			return
		}
	}
}

// exec runs one command on a pooled connection and hands the reply to parse, which keeps what
// it needs. A reply parse rejects marks the connection broken, like any protocol error: a
// server that answers out of kind is not one to keep talking to.
func (p *redisPool) exec(ctx context.Context, parse func(reply any) error, args ...string) error {
	c, err := p.get(ctx)
	if err != nil {
		return err
	}
	defer p.put(c)
	reply, err := c.do(ctx, p.commandTimeout, args...)
	if err != nil {
		return err
	}
	if err := parse(reply); err != nil {
		c.err = err
		return err
	}
	return nil
}

// get takes a pool slot, then an idle connection that is still open or a new one.
func (p *redisPool) get(ctx context.Context) (*respConn, error) {
	if err := p.acquire(ctx); err != nil {
		return nil, err
	}
	if c := p.takeIdle(); c != nil {
		return c, nil
	}
	c, err := p.connect(ctx)
	if err != nil {
		p.release()
		return nil, err
	}
	return c, nil
}

// takeIdle returns an idle connection that is still open, or nil. Connections the server
// closed while they were idle are dropped here, so no command is spent finding out.
func (p *redisPool) takeIdle() *respConn {
	for {
		select {
		case c := <-p.idle:
			if c.reclaim() == nil {
				return c
			}
			c.close()
		default:
			return nil
		}
	}
}

func (p *redisPool) acquire(ctx context.Context) error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return errStoreClosed
	}
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	wait := time.NewTimer(p.commandTimeout)
	defer wait.Stop()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-wait.C:
		return fmt.Errorf("no free connection within %v (pool of %d)", p.commandTimeout, cap(p.slots))
	}
}

func (p *redisPool) release() { <-p.slots }

// put returns c to the pool, or closes it when it is broken or the store is closed.
func (p *redisPool) put(c *respConn) {
	defer p.release()
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.err == nil && !p.closed {
		c.watch()
		select {
		case p.idle <- c:
			return
		default: // unreachable: slots keep the open connections within the idle capacity
		}
	}
	c.close()
}

// connect dials, then AUTHs and SELECTs as the URL asks, each step under its deadline.
func (p *redisPool) connect(ctx context.Context) (*respConn, error) {
	nc, err := p.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	c := newRespConn(nc)
	if p.cfg.password != "" {
		args := []string{"AUTH", p.cfg.password}
		if p.cfg.username != "" {
			args = []string{"AUTH", p.cfg.username, p.cfg.password}
		}
		reply, err := c.do(ctx, p.commandTimeout, args...)
		if err == nil {
			err = expectOK(reply)
		}
		if err != nil {
			c.close()
			return nil, fmt.Errorf("AUTH: %w", err) // the reply never echoes the password
		}
	}
	if p.cfg.db != 0 {
		reply, err := c.do(ctx, p.commandTimeout, "SELECT", strconv.Itoa(p.cfg.db))
		if err == nil {
			err = expectOK(reply)
		}
		if err != nil {
			c.close()
			return nil, fmt.Errorf("SELECT %d: %w", p.cfg.db, err)
		}
	}
	return c, nil
}

// respConn is one connection to a Redis server. It is used by one goroutine at a time: the
// pool hands it out and takes it back.
type respConn struct {
	// Shared.
	nc  net.Conn
	err error // the first I/O or protocol error; once set the connection is broken for good

	// Read.
	br     *bufio.Reader
	budget int // bytes the reply being read may still make us hold

	// Write.
	bw     *bufio.Writer
	numBuf [20]byte // scratch for formatting lengths

	// Idle watch. While the connection waits in the pool a goroutine blocks reading from it, so
	// that a server that closed it meanwhile (restart, CLIENT KILL, idle timeout) is noticed
	// before a command is sent, and the connection is replaced instead of failing that command.
	// A close in the last instant before reuse (before the runtime has delivered it to the
	// watch) is not seen: that one command fails, as with no watch, and is not retried, since
	// the server may have run it. The next command dials again.
	idleDone chan error
}

func newRespConn(nc net.Conn) *respConn {
	return &respConn{
		nc: nc,
		br: bufio.NewReaderSize(nc, maxLineLen),
		bw: bufio.NewWriter(nc),
	}
}

// close closes the network connection; it is broken from then on.
func (c *respConn) close() {
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.nc.Close()
}

// do sends one command and reads its reply, all before deadline, or before ctx ends if that
// is sooner. A server error comes back as a redisError and leaves the connection usable; any
// other failure marks the connection broken.
func (c *respConn) do(ctx context.Context, timeout time.Duration, args ...string) (any, error) {
	if c.err != nil {
		return nil, c.err
	}
	if err := ctx.Err(); err != nil {
		return nil, err // nothing was sent; the connection is still in step
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.nc.SetDeadline(deadline); err != nil {
		c.err = err
		return nil, err
	}
	// A deadline covers a context's deadline but not its cancellation; this covers that too.
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(aLongTimeAgo()) })
	reply, err := c.roundTrip(args)
	if !stop() {
		// The context ended while the command ran, and its deadline change may land at any
		// moment, even during a later command: this connection cannot be trusted again.
		if c.err == nil {
			c.err = ctx.Err()
		}
		if err != nil {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
	}
	return reply, err
}

func (c *respConn) roundTrip(args []string) (any, error) {
	if err := c.writeCommand(args); err != nil {
		c.err = err
		return nil, err
	}
	reply, err := c.readReply()
	if err != nil {
		c.err = err
		return nil, err
	}
	if e, ok := reply.(redisError); ok {
		return nil, e
	}
	return reply, nil
}

// writeCommand writes args as an array of bulk strings: *N CRLF, then $len CRLF arg CRLF for
// each. Redis reads a bulk string by its length, so no byte inside an argument (CR, LF,
// spaces, quotes) can end it early or start another command.
func (c *respConn) writeCommand(args []string) error {
	c.bw.WriteByte('*')
	c.writeLen(len(args))
	for _, a := range args {
		c.bw.WriteByte('$')
		c.writeLen(len(a))
		c.bw.WriteString(a)
		c.bw.WriteString("\r\n")
	}
	return c.bw.Flush() // bufio.Writer errors are sticky, so Flush reports any of the above
}

func (c *respConn) writeLen(n int) {
	c.bw.Write(strconv.AppendInt(c.numBuf[:0], int64(n), 10))
	c.bw.WriteString("\r\n")
}

// readReply reads one whole reply. Its values are: string (status), redisError, int64,
// []byte (bulk string), nil (null bulk string or null array) and []any (array).
func (c *respConn) readReply() (any, error) {
	c.budget = maxReplyBytes
	return c.readValue(0)
}

func (c *respConn) readValue(depth int) (any, error) {
	line, err := c.readLine()
	if err != nil {
		return nil, err
	}
	switch line[0] {
	case '+':
		return string(line[1:]), nil
	case '-':
		return redisError(line[1:]), nil
	case ':':
		n, err := parseInteger(line[1:])
		if err != nil {
			return nil, err
		}
		return n, nil
	case '$':
		n, err := parseLen(line[1:], maxBulkLen, "bulk string")
		if err != nil || n < 0 {
			return nil, err
		}
		if err := c.spend(n + 2); err != nil {
			return nil, err
		}
		p := make([]byte, n+2)
		if _, err := io.ReadFull(c.br, p); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("%w: truncated bulk string: %w", errProtocol, io.ErrUnexpectedEOF)
			}
			return nil, err
		}
		if p[n] != '\r' || p[n+1] != '\n' {
			return nil, protocolErrorf("bulk string not followed by CRLF")
		}
		return p[:n], nil
	case '*':
		n, err := parseLen(line[1:], maxArrayLen, "array")
		if err != nil || n < 0 {
			return nil, err
		}
		if depth >= maxNesting {
			return nil, protocolErrorf("arrays nested deeper than %d", maxNesting)
		}
		if err := c.spend(n * arraySlotCost); err != nil {
			return nil, err
		}
		a := make([]any, n)
		for i := range a {
			if a[i], err = c.readValue(depth + 1); err != nil {
				return nil, err
			}
		}
		return a, nil
	}
	// RESP3 types ('_', '#', ',', '%', ...) land here too: we never send HELLO 3, so a server
	// that uses them is not speaking our protocol.
	return nil, protocolErrorf("unknown reply type %q", line[0])
}

// readLine returns the next line without its CRLF. The slice points into the read buffer and
// is valid only until the next read.
func (c *respConn) readLine() ([]byte, error) {
	p, err := c.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, protocolErrorf("line longer than %d bytes", maxLineLen)
	case errors.Is(err, io.EOF) && (len(p) > 0 || c.budget < maxReplyBytes):
		// The server closed the connection in the middle of a reply.
		return nil, fmt.Errorf("%w: truncated reply: %w", errProtocol, io.ErrUnexpectedEOF)
	case err != nil:
		return nil, err
	}
	if len(p) < 2 || p[len(p)-2] != '\r' {
		return nil, protocolErrorf("line does not end in CRLF")
	}
	p = p[:len(p)-2]
	if len(p) == 0 {
		return nil, protocolErrorf("empty line")
	}
	if bytes.IndexByte(p, '\r') >= 0 {
		return nil, protocolErrorf("CR inside a line")
	}
	if err := c.spend(len(p) + 2); err != nil {
		return nil, err
	}
	return p, nil
}

func (c *respConn) spend(n int) error {
	if n > c.budget {
		return protocolErrorf("reply larger than %d bytes", maxReplyBytes)
	}
	c.budget -= n
	return nil
}

// parseInteger parses the payload of an integer reply: an optional '-' and 1 to 19 decimal
// digits that fit an int64. No '+', spaces or underscores.
func parseInteger(p []byte) (int64, error) {
	digits := p
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 19 || !allDigits(digits) {
		return 0, protocolErrorf("malformed integer")
	}
	n, err := strconv.ParseInt(string(p), 10, 64)
	if err != nil {
		return 0, protocolErrorf("integer out of range")
	}
	return n, nil
}

// parseLen parses the length of a bulk string or array: exactly "-1" (null), or decimal
// digits without sign or leading zeros, at most limit. It stops as soon as the value passes
// limit, so no length can overflow and nothing is allocated for a huge one.
func parseLen(p []byte, limit int, what string) (int, error) {
	if string(p) == "-1" {
		return -1, nil
	}
	switch {
	case len(p) == 0:
		return 0, protocolErrorf("%s without a length", what)
	case p[0] == '-':
		return 0, protocolErrorf("negative %s length", what)
	case !allDigits(p) || (p[0] == '0' && len(p) > 1):
		return 0, protocolErrorf("malformed %s length", what)
	}
	n := 0
	for _, b := range p {
		n = n*10 + int(b-'0')
		if n > limit {
			return 0, protocolErrorf("%s longer than %d", what, limit)
		}
	}
	return n, nil
}

func allDigits(p []byte) bool {
	for _, b := range p {
		if b < '0' || b > '9' {
			return false
		}
	}
	return true
}

// watch starts the idle watch: called when the connection goes back to the pool.
func (c *respConn) watch() {
	c.nc.SetReadDeadline(time.Time{}) // block until data, EOF, close or reclaim
	done := make(chan error, 1)
	c.idleDone = done
	go func() {
		_, err := c.br.Peek(1)
		done <- err
	}()
}

// reclaim ends the idle watch and reports whether the connection is still fit for a command.
func (c *respConn) reclaim() error {
	c.nc.SetReadDeadline(aLongTimeAgo()) // wakes the watch if it is still blocked
	err := <-c.idleDone
	c.idleDone = nil
	switch {
	case err == nil:
		err = protocolErrorf("server sent data while no command was pending")
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil // the watch saw nothing: the connection is idle and open
	}
	c.err = err
	return err
}
