package main

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The WorkOS sign-in keeps its in-between state in sealed cookies: the
// browser holds them, but can neither read nor forge them. A sealed value
// is base64url(nonce || AES-256-GCM(json)), with the cookie's base name as
// additional data, so a value sealed for one cookie does not open as another.
const (
	// sealPurpose names the key derived from each JWT key for sealing.
	sealPurpose = "dashauth state cookie v1"

	// signinAttemptTTL is how long a started sign-in (state, PKCE verifier)
	// or a pending organization choice lives: 10 minutes, CONTRACT.md. WorkOS
	// authorization codes themselves expire after 10 minutes.
	signinAttemptTTL = 10 * time.Minute

	// stateCookiePrefix + 16 hex digits of SHA-256(state) names one sign-in's
	// cookie, so sign-ins started in several tabs each keep their own.
	stateCookiePrefix = "workos_state_"
	stateTagLen       = 16
	pendingCookieBase = "workos_pending"

	// maxStateCookies bounds the sign-ins one browser may have open at once.
	// Each state cookie is about 250 bytes; unbounded, a person who clicks
	// "sign in" a few hundred times would make every request's headers
	// exceed maxHeaderBytes and be refused. Past the bound the oldest
	// sign-in is dropped.
	maxStateCookies = 16

	// maxSealedLen bounds a sealed value before it is decoded: browsers keep
	// at most 4096 bytes for a cookie's name and value together (RFC 6265
	// section 6.1).
	maxSealedLen = 4096

	gcmNonceLen = 12 // the GCM standard nonce, NIST SP 800-38D section 8.2
	gcmTagLen   = 16
)

// Outcomes of openSealed; callers answer LINK_EXPIRED or LINK_INVALID.
var (
	errSealedInvalid = errors.New("sealed cookie does not open")
	errSealedExpired = errors.New("sealed cookie has expired")
	// errNoStateCookie: other sign-ins' cookies are there, not this one's.
	errNoStateCookie = fmt.Errorf("no cookie for this state: %w", errSealedInvalid)
)

// stateCookie is what a started sign-in binds to the browser.
type stateCookie struct {
	State    string `json:"s"`
	Verifier string `json:"v"`
	Expires  int64  `json:"e"` // unix seconds
}

// pendingCookie is a sign-in waiting for the person to pick an organization.
type pendingCookie struct {
	Token   string   `json:"t"` // WorkOS pending_authentication_token
	UserID  string   `json:"u"` // the WorkOS user it belongs to
	Orgs    []string `json:"o"` // the organization ids WorkOS offered
	Expires int64    `json:"e"`
}

// sealKeys returns the sealing key derived from each JWT key, the current
// one first, so cookies sealed before a key rotation still open.
func (s *server) sealKeys() [][]byte {
	keys := make([][]byte, len(s.keys))
	for i, k := range s.keys {
		keys[i] = deriveKey(k, sealPurpose)
	}
	return keys
}

func newGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("seal: " + err.Error()) // unreachable: deriveKey returns 32 bytes
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic("seal: " + err.Error()) // unreachable: AES has a 16-byte block
	}
	return gcm
}

// seal encrypts v for the cookie named base under the current key. A random
// 96-bit nonce per value is safe far beyond this use: NIST SP 800-38D
// section 8.3 allows 2^32 of them per key.
func (s *server) seal(base string, v any) string {
	plain, err := json.Marshal(v)
	if err != nil {
		panic("seal: " + err.Error()) // unreachable: our own plain structs
	}
	nonce := make([]byte, gcmNonceLen)
	rand.Read(nonce) // never fails: crypto/rand.Read aborts the program instead
	sealed := newGCM(s.sealKeys()[0]).Seal(nonce, nonce, plain, []byte(base))
	return base64.RawURLEncoding.EncodeToString(sealed)
}

// openSealed decrypts a value sealed for base under any current key and
// decodes it into v, refusing unknown fields. It checks nothing else; the
// caller checks expiry and meaning.
func (s *server) openSealed(base, value string, v any) error {
	if len(value) > maxSealedLen {
		return fmt.Errorf("open %s cookie: %d bytes, limit %d: %w", base, len(value), maxSealedLen, errSealedInvalid)
	}
	raw, err := decodeBase64URL(value)
	if err != nil || len(raw) < gcmNonceLen+gcmTagLen {
		return fmt.Errorf("open %s cookie: not base64url of a sealed value: %w", base, errSealedInvalid)
	}
	nonce, box := raw[:gcmNonceLen], raw[gcmNonceLen:]
	for _, key := range s.sealKeys() {
		plain, err := newGCM(key).Open(nil, nonce, box, []byte(base))
		if err != nil {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(plain))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil || dec.More() {
			// unreachable unless the format changed under the same key
			return fmt.Errorf("open %s cookie: sealed JSON: %w", base, errSealedInvalid)
		}
		return nil
	}
	return fmt.Errorf("open %s cookie: authentication failed under every key: %w", base, errSealedInvalid)
}

// stateTag names a state's cookie: a hash, so the name reveals nothing and
// has a fixed length whatever the client sends as state.
func stateTag(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])[:stateTagLen]
}

func stateCookieBase(state string) string { return stateCookiePrefix + stateTag(state) }

// setStateCookie binds a started sign-in to this browser.
func (s *server) setStateCookie(w http.ResponseWriter, sc stateCookie) {
	base := stateCookieBase(sc.State)
	s.setCookie(w, s.cookieName(base), s.seal(base, sc), signinAttemptTTL)
}

// openStateCookie finds and opens the cookie of state. found is false when
// the request carries no state cookie of any sign-in at all.
func (s *server) openStateCookie(r *http.Request, state string) (sc stateCookie, found bool, err error) {
	if len(s.stateCookies(r)) == 0 {
		return sc, false, nil
	}
	base := stateCookieBase(state)
	ck, err := r.Cookie(s.cookieName(base))
	if err != nil {
		return sc, true, fmt.Errorf("open state cookie: %w", errNoStateCookie)
	}
	if err := s.openSealed(base, ck.Value, &sc); err != nil {
		return sc, true, err
	}
	if !equalStrings(sc.State, state) {
		// unreachable without a SHA-256 collision on the tag: a cookie
		// sealed under its own name always holds its own state
		return sc, true, fmt.Errorf("open state cookie: sealed state differs: %w", errSealedInvalid)
	}
	if !s.now().Before(time.Unix(sc.Expires, 0)) {
		return sc, true, fmt.Errorf("open state cookie: expired at %d: %w", sc.Expires, errSealedExpired)
	}
	return sc, true, nil
}

// stateCookies returns the state cookies the request carries, by base name.
func (s *server) stateCookies(r *http.Request) map[string]*http.Cookie {
	prefix := s.cookieName(stateCookiePrefix)
	out := make(map[string]*http.Cookie)
	for _, c := range r.Cookies() {
		if rest, ok := strings.CutPrefix(c.Name, prefix); ok && len(rest) == stateTagLen {
			out[stateCookiePrefix+rest] = c
		}
	}
	return out
}

// pruneStateCookies clears the sign-ins a new one may not sit beside: those
// that are expired or do not open, then the oldest, so that with the new
// one the browser holds at most maxStateCookies.
func (s *server) pruneStateCookies(w http.ResponseWriter, r *http.Request) {
	type live struct {
		name    string
		expires int64
	}
	var alive []live
	now := s.now()
	for base, c := range s.stateCookies(r) {
		var sc stateCookie
		if err := s.openSealed(base, c.Value, &sc); err != nil || !now.Before(time.Unix(sc.Expires, 0)) {
			s.setCookie(w, c.Name, "", 0)
			continue
		}
		alive = append(alive, live{c.Name, sc.Expires})
	}
	for len(alive) >= maxStateCookies {
		oldest := 0
		for i, l := range alive {
			if l.expires < alive[oldest].expires || (l.expires == alive[oldest].expires && l.name < alive[oldest].name) {
				oldest = i
			}
		}
		s.setCookie(w, alive[oldest].name, "", 0)
		alive = append(alive[:oldest], alive[oldest+1:]...)
	}
}

func (s *server) clearStateCookie(w http.ResponseWriter, state string) {
	s.setCookie(w, s.cookieName(stateCookieBase(state)), "", 0)
}

func (s *server) setPendingCookie(w http.ResponseWriter, pc pendingCookie) {
	s.setCookie(w, s.cookieName(pendingCookieBase), s.seal(pendingCookieBase, pc), signinAttemptTTL)
}

// openPendingCookie opens the pending organization choice. found is false
// when the request carries none.
func (s *server) openPendingCookie(r *http.Request) (pc pendingCookie, found bool, err error) {
	ck, err := r.Cookie(s.cookieName(pendingCookieBase))
	if err != nil {
		return pc, false, nil
	}
	if err := s.openSealed(pendingCookieBase, ck.Value, &pc); err != nil {
		return pc, true, err
	}
	if !s.now().Before(time.Unix(pc.Expires, 0)) {
		return pc, true, fmt.Errorf("open pending cookie: expired at %d: %w", pc.Expires, errSealedExpired)
	}
	return pc, true, nil
}

func (s *server) clearPendingCookie(w http.ResponseWriter) {
	s.setCookie(w, s.cookieName(pendingCookieBase), "", 0)
}

// equalStrings compares in constant time: a state is a secret shared with
// the browser, and its comparison should not tell how much of it matched.
func equalStrings(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
