package main

// Session tokens: HS256 JWTs (RFC 7519) of one shape, naming a session record. Nothing in a token picks its check.

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
	// tokenHeader, {"alg":"HS256","typ":"JWT"}, compared as bytes: no "none" or algorithm confusion, nothing decoded.
	tokenHeader   = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
	minKeyBytes   = 32           // RFC 7518 §3.2: an HS256 key at least as long as the hash
	maxTokenBytes = 4096         // a whole cookie's limit (RFC 6265 §6.1)
	maxVerified   = 10_000       // tokens whose claims verify keeps
	leeway        = 60           // seconds of clock skew allowed for exp and iat (contract, Session)
	maxUnix       = 253402300799 // 9999-12-31T23:59:59Z: no arithmetic on iat or exp overflows
	jsonEscaped   = "\"\\\x00\x01\x02\x03\x04\x05\x06\a\b\t\n\v\f\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f"
)

var (
	errMalformedToken  = errors.New("malformed token")
	errBadSignature    = errors.New("bad token signature")
	errWrongClaim      = errors.New("token claim does not match")
	errTokenExpired    = errors.New("token expired")
	errTokenFromFuture = errors.New("token issued in the future")
	errNoSession       = errors.New("no valid session")
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

// mac is HMAC-SHA256 of the parts, the service's one MAC. macPools keeps per key states whose key pads are hashed
// once (hmac.Reset keeps them), so a MAC costs no key setup.
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

func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails: crypto/rand aborts the program instead
	return hex.EncodeToString(b)
}

// signToken returns the token for c under key; checkShape leaves no byte in a claim that JSON would escape.
func signToken(key []byte, c claims) (string, error) {
	if err := checkShape(c); err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	p := append(make([]byte, 0, 512), '{') // room for the claims of a session token: no regrowth
	for _, f := range c.fields() {
		if p = append(append(append(p, '"'), f.name...), `":`...); f.s != nil {
			p = append(append(append(p, '"'), *f.s...), '"', ',')
		} else {
			p = append(strconv.AppendInt(p, *f.n, 10), ',')
		}
	}
	p[len(p)-1] = '}'
	b := base64.RawURLEncoding.AppendEncode(append(make([]byte, 0, 1024), tokenHeader+"."...), p)
	b = base64.RawURLEncoding.AppendEncode(append(b, '.'), mac(key, b))
	if len(b) > maxTokenBytes {
		return "", fmt.Errorf("sign token: %d bytes, over %d: %w", len(b), maxTokenBytes, errMalformedToken)
	}
	return string(b), nil
}

// verifyToken returns the claims of token if one of keys signed it, for issuer, of type typ, valid at now. The MAC is
// compared before the payload is decoded. Errors never quote the token: it is a bearer credential.
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
		matched = hmac.Equal(mac(k, []byte(token[:len(head)+1+len(payload)])), got) || matched
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

// isBase64URL reports whether s is non-empty base64url (RFC 4648 §5). Go's decoder skips CR and LF even in Strict mode.
func isBase64URL(s string) bool { return s != "" && strings.Trim(s, idBytes) == "" }

// checkShape reports whether c is a claims set we would sign: every string claimSafe, a known typ, 1 <= iat < exp.
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

// claimSafe reports whether s can be a claim: non-empty UTF-8 without a byte JSON would escape (jsonEscaped).
func claimSafe(s string) bool {
	return s != "" && !strings.ContainsAny(s, jsonEscaped) && utf8.ValidString(s) && !strings.ContainsRune(s, utf8.RuneError)
}

// field is a member a JSON object may hold: a string or a non-negative integer.
type field struct {
	name string
	s    *string
	n    *int64
}

// parseObject is the one reader of untrusted JSON (bodies, claims): one flat object of members among fields, each at
// most once, and nothing after it (RFC 8259). No duplicate, case variant or unknown member gets past: parsers that
// pick different duplicates are a classic bypass. Integers are digits alone. It returns a reason, or "".
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
		default: // digits alone: no sign, fraction or exponent
			d.ws()
			start := d.i
			for d.i < len(d.p) && '0' <= d.p[d.i] && d.p[d.i] <= '9' {
				d.i++
			}
			*fields[i].n, ok = parseDigits(d.p[start:d.i], 19)
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

// str reads a string: without escapes as it is, with them through encoding/json.
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
	return v, utf8.Valid(raw) && json.Unmarshal(bytes.Clone(raw), &v) == nil // a copy: raw may be on the stack
}

// A session is a record under session:<sid>, and the truth: deleting it (logout, a replayed refresh token, a lost
// membership) makes every token of it answer 401 on every replica. It is a line of what changes and the JSON that GET
// /v2/user/me/, the hot path, answers as it is.
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

// verify is verifyToken behind a cache of the claims of tokens that passed, keyed by their exact bytes and bounded:
// a hit skips the MAC and the parse, never the type or expiry check, and the session lookup (revocation) follows.
func (s *server) verify(token, typ string) (claims, error) {
	if v, ok := s.verified.Load(token); ok {
		if c, now := v.(claims), s.now().Unix(); c.Typ == typ && now-c.Exp < leeway && c.Iat-now <= leeway {
			return c, nil
		}
	}
	c, err := verifyToken(token, s.keys, s.cfg.APIURL, typ, s.now())
	if err == nil && s.verifiedN.Add(1)%maxVerified == 0 {
		s.verified.Clear() // so it holds maxVerified tokens at most
	}
	if err == nil {
		s.verified.Store(strings.Clone(token), c) // not the request's Cookie header, which token is a slice of
	}
	return c, err
}

// session verifies the cookie of typ and loads its record; a store failure comes back as is, to answer 503.
func (s *server) session(r *http.Request, typ string) (*session, error) {
	ck, err := r.Cookie(s.cookieName(typ + "_token"))
	if err != nil {
		return nil, errNoSession
	}
	c, err := s.verify(ck.Value, typ)
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

// requireSession answers 401 (not_signed_in, unlogged, without cookies; else session_expired) or 503 itself.
func (s *server) requireSession(w http.ResponseWriter, r *http.Request, typ string) (*session, bool) {
	ss, err := s.session(r, typ)
	absent := func(base string) bool { _, err := r.Cookie(s.cookieName(base)); return err != nil }
	switch {
	case errors.Is(err, errNoSession) && absent("access_token") && absent("refresh_token"):
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "not_signed_in"})
	case errors.Is(err, errNoSession):
		s.fail(w, r, http.StatusUnauthorized, "session_expired")
	case err != nil:
		s.storeFailed(w, r, err)
	}
	return ss, err == nil
}

// issue writes sid's record if the store holds old there ("" for new), then sets tokens that end by SESSION_MAX_AGE.
func (s *server) issue(ctx context.Context, w http.ResponseWriter, sid string, rec sessionRecord, old string) (bool, error) {
	now := s.now().Unix()
	end := rec.Start + int64(s.cfg.SessionMaxAge/time.Second)
	c := claims{Iss: s.cfg.APIURL, Aud: "dashboard", Sub: rec.User.ID, Email: rec.User.Email, Org: rec.Org, Sid: sid, Iat: now}
	tokens, exps := [2]string{}, [2]int64{}
	for i, ttl := range [...]time.Duration{s.cfg.AccessTTL, s.cfg.RefreshTTL} {
		c.Typ, c.Jti, c.Exp = [...]string{"access", "refresh"}[i], randomID(16), min(now+int64(ttl/time.Second), end)
		var err error
		if tokens[i], err = signToken(s.keys[0], c); err != nil {
			return false, err // fields too long for a cookie
		}
		exps[i] = c.Exp
	}
	body, _ := json.Marshal(rec)
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

// cookieName adds the prefix with which browsers enforce Secure and Path=/ (RFC 6265bis §4.1.3); not over plain http.
func (s *server) cookieName(base string) string {
	if s.cfg.Dev {
		return base
	}
	return map[bool]string{true: "__Secure-", false: "__Host-"}[s.cfg.CookieDomain != ""] + base
}

// setCookie sets an HttpOnly, SameSite=Lax cookie for ttl; a ttl under a second clears it.
func (s *server) setCookie(w http.ResponseWriter, name, value string, ttl time.Duration) {
	// MaxAge -1 is written as Max-Age=0: delete now.
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: !s.cfg.Dev,
		SameSite: http.SameSiteLaxMode, MaxAge: cmp.Or(max(-1, int(ttl/time.Second)), -1), Domain: s.cfg.CookieDomain}
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

// handleRefresh spends the current refresh token by compare-and-set on the record: of two refreshes (or one and a
// logout) one wins. The previous token within REFRESH_REUSE_INTERVAL is two tabs racing and fails; any other spent one
// was replayed and ends the session (RFC 9700 §4.14.2). Membership is checked again here.
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

// handleLogout ends the session of either cookie, clears both, and says where to end the WorkOS session too.
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

// seal keeps a sign-in's in-between state in the browser, unreadable and unforgeable: base64url(nonce ||
// AES-256-GCM(JSON)) with name as additional data. Random nonces are safe for 2^32 seals a key (SP 800-38D §8.3).
func (s *server) seal(name string, v any) string {
	plain, _ := json.Marshal(v) // cannot fail: plain structs of strings
	nonce := make([]byte, 12)
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(gcm(s.keys[0]).Seal(nonce, nonce, plain, []byte(name)))
}

func (s *server) unseal(name, value string, v any) error {
	raw, err := []byte(nil), errMalformedToken
	if len(value) <= maxTokenBytes && isBase64URL(value) {
		raw, err = base64.RawURLEncoding.Strict().DecodeString(value)
	}
	if err != nil || len(raw) < 12+16 { // a nonce and a tag at least
		return fmt.Errorf("sealed %s: not a sealed value", name)
	}
	for _, k := range s.keys {
		if plain, err := gcm(k).Open(nil, raw[:12], raw[12:], []byte(name)); err == nil {
			return json.Unmarshal(plain, v) // our own JSON, authenticated
		}
	}
	return fmt.Errorf("sealed %s: does not open under any key", name)
}

// gcm is AES-256-GCM under a key derived from a JWT key.
func gcm(jwtKey []byte) cipher.AEAD {
	block, _ := aes.NewCipher(deriveKey(jwtKey, "dashauth state cookie v1")) // cannot fail: 32 bytes
	aead, _ := cipher.NewGCM(block)
	return aead
}
