package main

// Session tokens are HS256 JWTs (RFC 7519) of exactly one shape, and a session is a record in the store that they
// name. Nothing in a token chooses how it is checked.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/workos/workos-go/v4/pkg/usermanagement"
)

const (
	// tokenHeader is {"alg":"HS256","typ":"JWT"} in base64url, the one header signed or accepted (contract, Session).
	// Compared as bytes, it ends "alg":"none" and algorithm confusion before anything is decoded.
	tokenHeader   = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
	minKeyBytes   = 32           // RFC 7518 §3.2: an HS256 key at least as long as the hash
	maxTokenBytes = 4096         // a whole cookie's limit (RFC 6265 §6.1)
	leeway        = 60           // seconds of clock skew allowed for exp and iat (contract, Session)
	maxUnix       = 253402300799 // 9999-12-31T23:59:59Z: no arithmetic on iat or exp overflows
)

var (
	errMalformedToken  = errors.New("malformed token")
	errBadSignature    = errors.New("bad token signature")
	errWrongClaim      = errors.New("token claim does not match")
	errTokenExpired    = errors.New("token expired")
	errTokenFromFuture = errors.New("token issued in the future")
)

// claims are the ten claims of a session token, every one required.
type claims struct {
	Iss, Aud, Sub, Email, Org, Sid, Typ, Jti string
	Iat, Exp                                 int64
}

func (c *claims) fields() []field {
	return []field{{"iss", &c.Iss, nil}, {"aud", &c.Aud, nil}, {"sub", &c.Sub, nil}, {"email", &c.Email, nil},
		{"org", &c.Org, nil}, {"sid", &c.Sid, nil}, {"typ", &c.Typ, nil}, {"jti", &c.Jti, nil},
		{"iat", nil, &c.Iat}, {"exp", nil, &c.Exp}}
}

// mac is HMAC-SHA256 of the concatenated parts: the one MAC of the service (tokens, code hashes, derived keys,
// webhook signatures). macPools keeps, per key, states whose key pads are hashed once (hmac.Reset keeps them), so a
// MAC costs no key setup.
func mac(key []byte, parts ...[]byte) []byte {
	p, ok := macPools.Load(string(key))
	if !ok {
		k := bytes.Clone(key)
		p, _ = macPools.LoadOrStore(string(k), &sync.Pool{New: func() any { h := hmac.New(sha256.New, k); h.Reset(); return h }})
	}
	h := p.(*sync.Pool).Get().(hash.Hash)
	defer p.(*sync.Pool).Put(h)
	h.Reset()
	for _, part := range parts {
		h.Write(part)
	}
	return h.Sum(nil)
}

var macPools sync.Map // string(key) → *sync.Pool of hash.Hash

// deriveKey makes an independent key for one purpose, so that a MAC made for one use can never pass for another.
func deriveKey(secret []byte, purpose string) []byte { return mac(secret, []byte(purpose)) }

// randomID returns n random bytes in hex.
func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails: crypto/rand aborts the program instead
	return hex.EncodeToString(b)
}

// signToken returns the token for c under key. checkShape leaves no byte in a claim that JSON would escape.
func signToken(key []byte, c claims) (string, error) {
	if err := checkShape(c); err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	p := []byte{'{'}
	for _, f := range c.fields() {
		if p = append(append(append(p, '"'), f.name...), `":`...); f.s != nil {
			p = append(append(append(p, '"'), *f.s...), '"', ',')
		} else {
			p = append(strconv.AppendInt(p, *f.n, 10), ',')
		}
	}
	p[len(p)-1] = '}'
	b := base64.RawURLEncoding.AppendEncode([]byte(tokenHeader+"."), p)
	b = base64.RawURLEncoding.AppendEncode(append(b, '.'), mac(key, b))
	if len(b) > maxTokenBytes {
		return "", fmt.Errorf("sign token: %d bytes, over %d: %w", len(b), maxTokenBytes, errMalformedToken)
	}
	return string(b), nil
}

// verifyToken returns the claims of token if one of keys (the current one, then one still accepted while keys rotate)
// signed it, for issuer, of type typ, valid at now. The MAC over the raw "header.payload" bytes is compared before
// the payload is decoded. Errors never quote the token: it is a bearer credential.
func verifyToken(token string, keys [][]byte, issuer, typ string, now time.Time) (claims, error) {
	var c claims
	head, rest, _ := strings.Cut(token, ".")
	payload, sig, ok := strings.Cut(rest, ".")
	if len(token) > maxTokenBytes || !ok || head != tokenHeader || !isBase64URL(payload) || !isBase64URL(sig) {
		return c, fmt.Errorf("verify token: not our header and two base64url segments: %w", errMalformedToken)
	}
	var buf [512]byte // the claims of our tokens fit; a longer payload grows it on the heap
	got, err := base64.RawURLEncoding.Strict().AppendDecode(buf[:0], []byte(sig))
	if err != nil || len(got) != sha256.Size {
		return c, fmt.Errorf("verify token: signature encoding: %w", errMalformedToken)
	}
	matched := false
	for _, k := range keys { // every key, no early exit
		if hmac.Equal(mac(k, []byte(token[:len(head)+1+len(payload)])), got) {
			matched = true
		}
	}
	if !matched {
		return c, fmt.Errorf("verify token: %w", errBadSignature)
	}
	p, err := base64.RawURLEncoding.Strict().AppendDecode(buf[:0], []byte(payload))
	if err == nil {
		if reason := parseObject(p, c.fields()); reason != "" {
			err = errors.New(reason)
		}
	}
	if err == nil {
		err = checkShape(c)
	}
	switch n := now.Unix(); {
	case err != nil:
		return claims{}, fmt.Errorf("verify token: %w: %w", errMalformedToken, err)
	case c.Iss != issuer || c.Aud != "dashboard" || c.Typ != typ:
		return claims{}, fmt.Errorf("verify token: iss %q, aud %q, typ %q: %w", c.Iss, c.Aud, c.Typ, errWrongClaim)
	case n-c.Exp >= leeway: // valid only before exp (RFC 7519 §4.1.4)
		return claims{}, fmt.Errorf("verify token: exp %d, now %d: %w", c.Exp, n, errTokenExpired)
	case c.Iat-n > leeway:
		return claims{}, fmt.Errorf("verify token: iat %d, now %d: %w", c.Iat, n, errTokenFromFuture)
	}
	return c, nil
}

// isBase64URL reports whether s is non-empty and only of the base64url alphabet (RFC 4648 §5). Go's decoder skips CR
// and LF even in Strict mode; refusing them here gives every token and sealed value exactly one spelling.
func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; !('A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_') {
			return false
		}
	}
	return s != ""
}

// checkShape reports whether c is a claims set we would sign: every string non-empty UTF-8 free of control bytes,
// quotes and backslashes, a known typ, and 1 <= iat < exp <= maxUnix.
func checkShape(c claims) error {
	for _, v := range [...]string{c.Iss, c.Aud, c.Sub, c.Email, c.Org, c.Sid, c.Typ, c.Jti} {
		if !claimSafe(v) {
			return errors.New("a claim is missing, empty, not UTF-8, or holds a control byte, quote or backslash")
		}
	}
	if c.Typ != "access" && c.Typ != "refresh" || c.Iat < 1 || c.Exp <= c.Iat || c.Exp > maxUnix {
		return fmt.Errorf("claims typ %q, iat %d, exp %d: out of range", c.Typ, c.Iat, c.Exp)
	}
	return nil
}

// claimSafe reports whether s can be a claim: non-empty UTF-8 free of control bytes, quotes and backslashes.
func claimSafe(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == '"' || r == '\\' || r == utf8.RuneError })
}

// field is a member a JSON object may hold: a string, or a non-negative integer.
type field struct {
	name string
	s    *string
	n    *int64
}

// parseObject is the one reader of untrusted JSON (request bodies, token claims): one flat object whose members are
// among fields, each at most once, in any order with any insignificant whitespace (RFC 8259), and nothing after it.
// Names match exactly once their escapes are decoded, so no duplicate, case variant ("ISS") or unknown member gets
// past: two parsers that pick different duplicates are a classic bypass. Integers are digits alone (no 1e9, 1.0 or
// "1"). It returns a snake_case reason, or "".
func parseObject(p []byte, fields []field) string {
	d := jsonScanner{p: p}
	if !d.eat('{') {
		return "invalid_json"
	}
	seen := 0
	for first := true; !d.eat('}'); first = false {
		if !first && !d.eat(',') {
			return "invalid_json"
		}
		name, ok := d.str()
		if !ok || !d.eat(':') {
			return "invalid_json"
		}
		i := 0
		for i < len(fields) && fields[i].name != name {
			i++
		}
		switch {
		case i == len(fields):
			return "unknown_field"
		case seen&(1<<i) != 0:
			return "duplicate_field"
		case fields[i].s != nil:
			*fields[i].s, ok = d.str()
		default:
			*fields[i].n, ok = d.int()
		}
		if !ok {
			return "invalid_" + name
		}
		seen |= 1 << i
	}
	if d.ws(); d.i != len(p) {
		return "invalid_json"
	}
	return ""
}

// jsonScanner reads the few JSON tokens parseObject needs.
type jsonScanner struct {
	p []byte
	i int
}

func (d *jsonScanner) ws() {
	for d.i < len(d.p) && strings.IndexByte(" \t\n\r", d.p[d.i]) >= 0 {
		d.i++
	}
}

func (d *jsonScanner) eat(b byte) bool {
	if d.ws(); d.i < len(d.p) && d.p[d.i] == b {
		d.i++
		return true
	}
	return false
}

// str reads a string: one without escapes as it is, after checking its bytes; one with escapes through encoding/json,
// which checks each.
func (d *jsonScanner) str() (string, bool) {
	if d.ws(); d.i >= len(d.p) || d.p[d.i] != '"' {
		return "", false
	}
	start := d.i
	for d.i++; d.i < len(d.p) && d.p[d.i] != '"'; d.i++ {
		if d.p[d.i] == '\\' {
			d.i++
		}
	}
	if d.i++; d.i > len(d.p) {
		return "", false
	}
	raw := d.p[start:d.i]
	if !bytes.ContainsFunc(raw, func(r rune) bool { return r < 0x20 || r == '\\' || r == utf8.RuneError }) {
		return string(raw[1 : len(raw)-1]), true
	}
	var v string
	return v, utf8.Valid(raw) && json.Unmarshal(raw, &v) == nil
}

// int reads a non-negative integer of digits alone.
func (d *jsonScanner) int() (int64, bool) {
	d.ws()
	start := d.i
	for d.i < len(d.p) && '0' <= d.p[d.i] && d.p[d.i] <= '9' {
		d.i++
	}
	return parseDigits(d.p[start:d.i], 19)
}

// A session is a record in the store under session:<sid>, named by two signed cookies, and the record is the truth:
// deleting it (logout, a replayed refresh token, a lost membership) makes every token of the session answer 401 on
// every replica sharing the store. It is stored as a line of what changes ("<sign-in unix time> <WorkOS session id>
// <refresh jti> <previous refresh jti> <when that was spent, unix ms>") and the JSON that GET /v2/user/me/, the hot
// path, answers as it is.
type sessionRecord struct {
	User   user   `json:"user"`
	Org    string `json:"organization_id"`
	Method string `json:"login_method"` // "email_code" or "workos"
	Start  int64  `json:"-"`            // sign-in, unix seconds: SESSION_MAX_AGE counts from it
	WorkOS string `json:"-"`            // the WorkOS session id, or "-"
	Jti    string `json:"-"`            // of the refresh token that may be spent now
	Prev   string `json:"-"`            // of the one spent before it, or "-"
	Spent  int64  `json:"-"`            // when that was spent, unix ms
}

// session is a verified token and the record it names, as stored.
type session struct {
	claims
	raw, body string // the whole record, and its me JSON
}

var errNoSession = errors.New("no valid session")

// session verifies the cookie of typ ("access" or "refresh") and loads its record. A store failure comes back as
// is, so that the caller answers 503 rather than sign the person out.
func (s *server) session(r *http.Request, typ string) (*session, error) {
	ck, err := r.Cookie(s.cookieName(typ + "_token"))
	if err != nil {
		return nil, errNoSession
	}
	c, err := verifyToken(ck.Value, s.keys, s.cfg.APIURL, typ, s.now())
	if err != nil {
		return nil, errNoSession
	}
	raw, ok, err := s.store.Get(r.Context(), s.key("session", c.Sid))
	if err != nil || !ok {
		return nil, cmp.Or(err, errNoSession)
	}
	head, body, _ := strings.Cut(raw, "\n")
	start, _, _ := strings.Cut(head, " ")
	if at, _ := strconv.ParseInt(start, 10, 64); !s.now().Before(time.Unix(at, 0).Add(s.cfg.SessionMaxAge)) {
		return nil, errNoSession
	}
	return &session{claims: c, raw: raw, body: body}, nil
}

func (ss *session) record() (rec sessionRecord, err error) {
	head, _, _ := strings.Cut(ss.raw, "\n")
	if _, err = fmt.Sscan(head, &rec.Start, &rec.WorkOS, &rec.Jti, &rec.Prev, &rec.Spent); err == nil {
		err = json.Unmarshal([]byte(ss.body), &rec)
	}
	return rec, err
}

// requireSession is session for a handler: it answers 401 or 503 itself. A request with no session cookie at all is
// a signed-out visitor (not_signed_in, not worth a log line); one with a cookie that did not do is session_expired,
// which tells the page a refresh may help.
func (s *server) requireSession(w http.ResponseWriter, r *http.Request, typ string) (*session, bool) {
	ss, err := s.session(r, typ)
	_, noAccess := r.Cookie(s.cookieName("access_token"))
	_, noRefresh := r.Cookie(s.cookieName("refresh_token"))
	switch {
	case errors.Is(err, errNoSession) && noAccess != nil && noRefresh != nil:
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "not_signed_in"})
	case errors.Is(err, errNoSession):
		s.fail(w, r, http.StatusUnauthorized, "session_expired")
	case err != nil:
		s.storeFailed(w, r, err)
	}
	return ss, err == nil
}

// issue signs a fresh pair of tokens for sid and writes its record, with the new refresh jti, if the store holds old
// there ("" for a new session); only then does it set the cookies. No token outlives SESSION_MAX_AGE.
func (s *server) issue(ctx context.Context, w http.ResponseWriter, sid string, rec sessionRecord, old string) (bool, error) {
	now := s.now().Unix()
	end := rec.Start + int64(s.cfg.SessionMaxAge/time.Second)
	c := claims{Iss: s.cfg.APIURL, Aud: "dashboard", Sub: rec.User.ID, Email: rec.User.Email, Org: rec.Org, Sid: sid, Iat: now}
	var tokens [2]string
	var exps [2]int64
	for i, ttl := range [...]time.Duration{s.cfg.AccessTTL, s.cfg.RefreshTTL} {
		c.Typ, c.Jti, c.Exp = [...]string{"access", "refresh"}[i], randomID(16), min(now+int64(ttl/time.Second), end)
		var err error
		if tokens[i], err = signToken(s.keys[0], c); err != nil {
			return false, err // fields too long for a cookie
		}
		exps[i] = c.Exp
	}
	body, _ := json.Marshal(rec) // cannot fail: strings only
	value := fmt.Sprintf("%d %s %s %s %d\n%s", rec.Start, cmp.Or(rec.WorkOS, "-"), c.Jti, cmp.Or(rec.Prev, "-"), rec.Spent, body)
	// The record outlives the refresh token by the leeway verifyToken grants it.
	done, err := s.store.Put(ctx, s.key("session", sid), old, value, time.Duration(c.Exp+leeway-now)*time.Second)
	if err != nil || !done {
		return false, err
	}
	s.setCookie(w, s.cookieName("access_token"), tokens[0], time.Duration(exps[0]-now)*time.Second)
	s.setCookie(w, s.cookieName("refresh_token"), tokens[1], time.Duration(exps[1]-now)*time.Second)
	return true, nil
}

// cookieName applies the prefixes with which browsers enforce Secure and Path=/ (and, for __Host-, no Domain): RFC
// 6265bis §4.1.3. Plain http in development mode cannot carry them.
func (s *server) cookieName(base string) string {
	switch {
	case s.cfg.Dev:
		return base
	case s.cfg.CookieDomain != "":
		return "__Secure-" + base
	}
	return "__Host-" + base
}

// setCookie sets an HttpOnly, SameSite=Lax cookie for ttl; a ttl under a second clears it.
func (s *server) setCookie(w http.ResponseWriter, name, value string, ttl time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: !s.cfg.Dev,
		SameSite: http.SameSiteLaxMode, MaxAge: max(-1, int(ttl/time.Second)), Domain: s.cfg.CookieDomain}
	if s.cfg.Dev {
		c.Domain = ""
	}
	if c.MaxAge == 0 {
		c.MaxAge = -1 // written as Max-Age=0: delete now
	}
	w.Header().Add("Set-Cookie", c.String())
	w.Header().Set("Cache-Control", "no-store")
}

func (s *server) handleMe(w http.ResponseWriter, r *http.Request) {
	if ss, ok := s.requireSession(w, r, "access"); ok {
		w.Header()["Content-Type"] = []string{"application/json"}
		w.Header()["Cache-Control"] = []string{"no-store"}
		io.WriteString(w, ss.body)
	}
}

// handleRefresh spends the session's current refresh token for a new pair, by compare-and-set on its record, so that
// of two refreshes (or a refresh and a logout) only one wins. The token spent before it, seen again within
// REFRESH_REUSE_INTERVAL, is two tabs racing and only fails; any other (later, or older) was stolen and replayed,
// and the whole session ends (RFC 9700 §4.14.2). Refresh is also where a session meets the membership rules again.
func (s *server) handleRefresh(w http.ResponseWriter, r *http.Request) {
	ss, ok := s.requireSession(w, r, "refresh")
	if !ok {
		return
	}
	rec, err := ss.record()
	member, now := false, s.now()
	if err == nil {
		member, err = s.stillMember(r.Context(), rec)
	}
	switch {
	case err != nil:
		s.log.Error("refresh: membership check failed", "sid", ss.Sid, "err", err)
		s.fail(w, r, http.StatusServiceUnavailable, "membership_check_unavailable")
	case !member:
		if s.revoke(w, r, ss.Sid) {
			s.fail(w, r, http.StatusUnauthorized, "membership_inactive")
		}
	case ss.Jti == rec.Jti:
		rec.Prev, rec.Spent = rec.Jti, now.UnixMilli()
		if done, err := s.issue(r.Context(), w, ss.Sid, rec, ss.raw); err != nil {
			s.storeFailed(w, r, err)
		} else if !done {
			s.fail(w, r, http.StatusUnauthorized, "refresh_token_spent") // another refresh or a logout came first
		} else {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		}
	case ss.Jti == rec.Prev && now.Sub(time.UnixMilli(rec.Spent)) <= s.cfg.RefreshReuse:
		s.count("dashauth_refresh_reuse_total", "refused")
		s.fail(w, r, http.StatusUnauthorized, "refresh_token_spent")
	case s.revoke(w, r, ss.Sid):
		s.count("dashauth_refresh_reuse_total", "revoked")
		s.log.Warn("spent refresh token replayed: session revoked", "sid", ss.Sid, "sub", ss.Sub)
		s.fail(w, r, http.StatusUnauthorized, "refresh_token_spent")
	}
}

// revoke deletes a session's record, if there is one, and clears its cookies.
func (s *server) revoke(w http.ResponseWriter, r *http.Request, sid string) bool {
	if sid != "" {
		if _, err := s.store.Put(r.Context(), s.key("session", sid), anyValue, "", 0); err != nil {
			s.storeFailed(w, r, err)
			return false
		}
	}
	s.setCookie(w, s.cookieName("access_token"), "", 0)
	s.setCookie(w, s.cookieName("refresh_token"), "", 0)
	return true
}

// handleLogout ends the session named by either cookie, clears both, and in WorkOS mode says where to end the WorkOS
// session too.
func (s *server) handleLogout(w http.ResponseWriter, r *http.Request) {
	ss, err := s.session(r, "access")
	if errors.Is(err, errNoSession) {
		ss, err = s.session(r, "refresh")
	}
	body, sid := map[string]string{"status": "logged_out"}, ""
	if ss != nil {
		sid = ss.Sid
		if rec, _ := ss.record(); s.workos != nil && rec.WorkOS != "-" {
			u, _ := s.workos.GetLogoutURL(usermanagement.GetLogoutURLOpts{SessionID: rec.WorkOS}) // fails only on ""
			body["logout_url"] = u.String()
		}
	}
	if err != nil && !errors.Is(err, errNoSession) {
		s.storeFailed(w, r, err)
	} else if s.revoke(w, r, sid) {
		writeJSON(w, http.StatusOK, body)
	}
}

// Sealed cookies keep a sign-in's in-between state in the browser, which can neither read nor forge them:
// base64url(nonce || AES-256-GCM(JSON)), the cookie's name bound as additional data, so a value sealed for one never
// opens as another. A random 96-bit nonce is safe for 2^32 seals per key (NIST SP 800-38D §8.3).
func (s *server) seal(name string, v any) string {
	plain, _ := json.Marshal(v) // cannot fail: plain structs of strings
	nonce := make([]byte, 12)
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(gcm(s.sealKeys[0]).Seal(nonce, nonce, plain, []byte(name)))
}

// unseal opens a value sealed for name under any current key into v.
func (s *server) unseal(name, value string, v any) error {
	raw, err := []byte(nil), errMalformedToken
	if len(value) <= maxTokenBytes && isBase64URL(value) {
		raw, err = base64.RawURLEncoding.Strict().DecodeString(value)
	}
	if err != nil || len(raw) < 12+16 { // a nonce and a tag at least
		return fmt.Errorf("sealed %s: not a sealed value", name)
	}
	for _, k := range s.sealKeys {
		if plain, err := gcm(k).Open(nil, raw[:12], raw[12:], []byte(name)); err == nil {
			return json.Unmarshal(plain, v) // our own JSON, authenticated
		}
	}
	return fmt.Errorf("sealed %s: does not open under any key", name)
}

func gcm(key []byte) cipher.AEAD {
	block, _ := aes.NewCipher(key) // cannot fail: derived keys are 32 bytes
	aead, _ := cipher.NewGCM(block)
	return aead
}
