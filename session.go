package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// A session is a record in the store under session:<sid>, and two cookies
// that carry signed tokens naming it. The record is the source of truth:
// logout or reuse detection deletes it, and from then on every token of
// that session answers 401, on every replica that shares the store.
type sessionRecord struct {
	User            user   `json:"user"`
	Org             string `json:"org"`
	Method          string `json:"login_method"` // "email_code" or "workos"
	WorkOSSessionID string `json:"workos_session_id,omitempty"`
}

// randomID returns n random bytes as hex.
func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails: crypto/rand.Read aborts the program instead
	return hex.EncodeToString(b)
}

// deriveKey makes an independent key for one purpose from the JWT secret,
// so a code hash can never be confused with a token signature.
func deriveKey(secret []byte, purpose string) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(purpose))
	return mac.Sum(nil)
}

// startSession stores a new session record and sets its cookies.
func (s *server) startSession(ctx context.Context, w http.ResponseWriter, rec sessionRecord) error {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	sid := "sess_" + randomID(16)
	if err := s.saveSession(ctx, sid, rec); err != nil {
		return err
	}
	return s.setSessionCookies(w, sid, rec)
}

func (s *server) saveSession(ctx context.Context, sid string, rec sessionRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err // unreachable: plain strings
	}
	return s.store.Set(ctx, s.key("session", sid), string(data), s.cfg.RefreshTTL)
}

// loadSession returns the record of sid; ok is false once it was revoked or expired.
func (s *server) loadSession(ctx context.Context, sid string) (rec sessionRecord, ok bool, err error) {
	data, found, err := s.store.Get(ctx, s.key("session", sid))
	if err != nil || !found {
		return rec, false, err
	}
	if err := json.Unmarshal([]byte(data), &rec); err != nil {
		return rec, false, nil // a record we cannot read is no session
	}
	return rec, true, nil
}

// revokeSession ends sid on every replica: it marks the session revoked,
// then deletes its record. The mark comes first and outlives every token of
// the session, so a refresh that wrote the record back after the delete
// sees it (handleRefresh).
func (s *server) revokeSession(ctx context.Context, sid string) error {
	keep := s.cfg.RefreshTTL + tokenLeewaySeconds*time.Second
	if err := s.store.Set(ctx, s.key("revoked", sid), "1", keep); err != nil {
		return err
	}
	_, err := s.store.Del(ctx, s.key("session", sid))
	return err
}

// setSessionCookies signs a fresh access and refresh token for sid.
func (s *server) setSessionCookies(w http.ResponseWriter, sid string, rec sessionRecord) error {
	now := s.now()
	base := claims{
		Iss: s.cfg.APIURL, Aud: tokenAudience, Sub: rec.User.ID, Email: rec.User.Email,
		Org: rec.Org, Sid: sid, Iat: now.Unix(),
	}
	access, refresh := base, base
	access.Typ, access.Jti, access.Exp = "access", randomID(16), now.Add(s.cfg.AccessTTL).Unix()
	refresh.Typ, refresh.Jti, refresh.Exp = "refresh", randomID(16), now.Add(s.cfg.RefreshTTL).Unix()
	at, err := signToken(s.keys[0], access)
	if err != nil {
		return err
	}
	rt, err := signToken(s.keys[0], refresh)
	if err != nil {
		return err
	}
	s.setCookie(w, s.cookieName("access_token"), at, s.cfg.AccessTTL)
	s.setCookie(w, s.cookieName("refresh_token"), rt, s.cfg.RefreshTTL)
	return nil
}

// cookieName applies the prefixes that make browsers enforce Secure and
// Path=/ (and, for __Host-, no Domain): RFC 6265bis section 4.1.3.
func (s *server) cookieName(base string) string {
	switch {
	case s.cfg.Dev:
		return base // plain http: browsers refuse prefixed cookies without Secure
	case s.cfg.CookieDomain != "":
		return "__Secure-" + base
	default:
		return "__Host-" + base
	}
}

// setCookie sets an HttpOnly, SameSite=Lax cookie for ttl; a ttl of 0 clears it.
func (s *server) setCookie(w http.ResponseWriter, name, value string, ttl time.Duration) {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		Secure:   !s.cfg.Dev,
		SameSite: http.SameSiteLaxMode,
		MaxAge:   int(ttl / time.Second),
	}
	if ttl <= 0 {
		c.MaxAge = -1 // written as Max-Age=0: delete now
	}
	if s.cfg.CookieDomain != "" && !s.cfg.Dev {
		c.Domain = s.cfg.CookieDomain
	}
	w.Header().Add("Set-Cookie", c.String())
	w.Header().Set("Cache-Control", "no-store")
}

func (s *server) clearSessionCookies(w http.ResponseWriter) {
	s.setCookie(w, s.cookieName("access_token"), "", 0)
	s.setCookie(w, s.cookieName("refresh_token"), "", 0)
}

// errNoSession means the request carries no valid, unrevoked session.
var errNoSession = errors.New("no valid session")

// session verifies the named cookie as a token of type typ and loads its
// session record. A store failure is returned as is, so the caller can
// answer 503 rather than sign the person out.
func (s *server) session(r *http.Request, cookie, typ string) (claims, sessionRecord, error) {
	ck, err := r.Cookie(s.cookieName(cookie))
	if err != nil {
		return claims{}, sessionRecord{}, errNoSession
	}
	c, err := verifyToken(ck.Value, s.keys, s.cfg.APIURL, typ, s.now())
	if err != nil {
		return claims{}, sessionRecord{}, errNoSession
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	rec, ok, err := s.loadSession(ctx, c.Sid)
	if err != nil {
		return claims{}, sessionRecord{}, err
	}
	if !ok {
		return claims{}, sessionRecord{}, errNoSession
	}
	return c, rec, nil
}

// requireSession is session for a handler: it answers 401 when there is
// no valid session and 503 when the store fails, and reports whether the
// handler may go on.
func (s *server) requireSession(w http.ResponseWriter, r *http.Request, cookie, typ string) (claims, sessionRecord, bool) {
	c, rec, err := s.session(r, cookie, typ)
	switch {
	case errors.Is(err, errNoSession):
		writeError(w, http.StatusUnauthorized, "not_signed_in")
		return c, rec, false
	case err != nil:
		s.storeFailed(w, "load session", err)
		return c, rec, false
	}
	return c, rec, true
}

func (s *server) handleMe(w http.ResponseWriter, r *http.Request) {
	c, rec, ok := s.requireSession(w, r, "access_token", "access")
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"user":            user{ID: c.Sub, Email: c.Email, FirstName: rec.User.FirstName, LastName: rec.User.LastName},
		"organization_id": c.Org,
		"login_method":    rec.Method,
	})
}

// handleRefresh spends a refresh token for a new pair. A spent token seen
// again within REFRESH_REUSE_INTERVAL is a race between two tabs and only
// fails; seen later, it was stolen and replayed, so the whole session ends
// (the refresh-token reuse detection of RFC 9700 section 4.14.2).
func (s *server) handleRefresh(w http.ResponseWriter, r *http.Request) {
	c, rec, ok := s.requireSession(w, r, "refresh_token", "refresh")
	if !ok {
		return
	}
	// A person deactivated or removed since signing in gets no new tokens:
	// refresh is where a session meets the membership rules again.
	member, err := s.stillMember(r.Context(), rec)
	switch {
	case err != nil:
		s.log.Error("refresh: membership check failed", "sid", c.Sid, "err", err)
		writeError(w, http.StatusServiceUnavailable, "membership_check_unavailable")
		return
	case !member:
		ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
		defer cancel()
		if err := s.revokeSession(ctx, c.Sid); err != nil {
			s.storeFailed(w, "revoke session", err)
			return
		}
		s.clearSessionCookies(w)
		writeError(w, http.StatusUnauthorized, "membership_inactive")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	now := s.now()
	// Remember the spent token until it could no longer verify anyway.
	keep := time.Unix(c.Exp+tokenLeewaySeconds+1, 0).Sub(now)
	first, err := s.store.SetNX(ctx, s.key("spent", c.Jti), strconv.FormatInt(now.UnixMilli(), 10), keep)
	if err != nil {
		s.storeFailed(w, "spend refresh token", err)
		return
	}
	if !first {
		spentAt, _, err := s.store.Get(ctx, s.key("spent", c.Jti))
		if err != nil {
			s.storeFailed(w, "read spent token", err)
			return
		}
		ms, _ := strconv.ParseInt(spentAt, 10, 64)
		if now.Sub(time.UnixMilli(ms)) > s.cfg.RefreshReuse {
			if err := s.revokeSession(ctx, c.Sid); err != nil {
				s.storeFailed(w, "revoke session", err)
				return
			}
			s.metrics.inc("dashauth_refresh_reuse_total", "action", "revoked")
			s.log.Warn("spent refresh token replayed: session revoked", "sid", c.Sid, "sub", c.Sub)
		} else {
			s.metrics.inc("dashauth_refresh_reuse_total", "action", "refused")
		}
		writeError(w, http.StatusUnauthorized, "refresh_token_spent")
		return
	}
	// From here a store failure must not leave the token spent: the
	// browser's retry would be taken for a replay and end the session.
	unspend := func() {
		if _, err := s.store.Del(ctx, s.key("spent", c.Jti)); err != nil {
			s.log.Error("could not unspend a refresh token after a failed refresh", "sid", c.Sid, "err", err)
		}
	}
	// Extend the record's life with the new refresh token.
	if err := s.saveSession(ctx, c.Sid, rec); err != nil {
		unspend()
		s.storeFailed(w, "extend session", err)
		return
	}
	// A logout (or a reuse revocation) may have deleted the record between
	// our read and this write, which would have brought it back. Revocation
	// marks the session before it deletes the record, so looking for the
	// mark after the write catches every such interleaving.
	_, revoked, err := s.store.Get(ctx, s.key("revoked", c.Sid))
	if err != nil {
		unspend()
		s.storeFailed(w, "check revocation", err)
		return
	}
	if revoked {
		if _, err := s.store.Del(ctx, s.key("session", c.Sid)); err != nil {
			s.storeFailed(w, "revoke session", err)
			return
		}
		writeError(w, http.StatusUnauthorized, "not_signed_in")
		return
	}
	if err := s.setSessionCookies(w, c.Sid, rec); err != nil {
		s.log.Error("sign tokens", "err", err) // unreachable: keys are checked at start
		writeError(w, http.StatusServiceUnavailable, "unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleLogout ends the session named by either cookie, clears both, and in
// WorkOS mode tells the frontend where to end the WorkOS session too.
func (s *server) handleLogout(w http.ResponseWriter, r *http.Request) {
	c, rec, err := s.session(r, "access_token", "access")
	if errors.Is(err, errNoSession) {
		c, rec, err = s.session(r, "refresh_token", "refresh")
	}
	if err != nil && !errors.Is(err, errNoSession) {
		s.storeFailed(w, "load session", err)
		return
	}
	body := map[string]string{"status": "logged_out"}
	if err == nil {
		ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
		defer cancel()
		if err := s.revokeSession(ctx, c.Sid); err != nil {
			s.storeFailed(w, "revoke session", err)
			return
		}
		if s.workos != nil && rec.WorkOSSessionID != "" {
			if u, err := s.workos.logoutURL(rec.WorkOSSessionID); err == nil {
				body["logout_url"] = u
			}
		}
	}
	s.clearSessionCookies(w)
	writeJSON(w, http.StatusOK, body)
}
