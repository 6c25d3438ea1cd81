package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sign-in answers (CONTRACT.md, "Sign-in responses").
const (
	loginSuccessful               = "LOGIN_SUCCESSFUL"
	membershipDeactivated         = "MEMBERSHIP_DEACTIVATED"
	membershipNotFound            = "MEMBERSHIP_NOT_FOUND"
	organizationSelectionRequired = "ORGANIZATION_SELECTION_REQUIRED"
	linkInvalid                   = "LINK_INVALID"
	linkExpired                   = "LINK_EXPIRED"
	codeSent                      = "CODE_SENT"
)

// Login-code rules, all from CONTRACT.md.
const (
	codeDigits   = 6
	codeTTL      = 10 * time.Minute
	codeMaxTries = 5

	perAddressGap    = 60 * time.Second // one new code per address per minute
	perAddressWindow = 15 * time.Minute // ...and at most 5 per 15 minutes
	perAddressMax    = 5
	perClientWindow  = 15 * time.Minute // one client address: 30 requests per 15 minutes
	perClientMax     = 30

	// storeTimeout bounds every state call made while answering a request.
	storeTimeout = 3 * time.Second
)

// user is who signed in, as the API shows it.
type user struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
}

// signinResponse writes one of the sign-in answers that set no cookie.
func (s *server) signinResponse(w http.ResponseWriter, status int, responseType string) {
	s.metrics.inc("dashauth_signins_total", "response_type", responseType)
	writeJSON(w, status, map[string]string{"response_type": responseType})
}

// signinSuccess starts a session for u in org and answers LOGIN_SUCCESSFUL.
func (s *server) signinSuccess(w http.ResponseWriter, r *http.Request, u user, org string, rec sessionRecord) {
	rec.User, rec.Org = u, org
	if err := s.startSession(r.Context(), w, rec); err != nil {
		s.storeFailed(w, "start session", err)
		return
	}
	s.metrics.inc("dashauth_signins_total", "response_type", loginSuccessful)
	writeJSON(w, http.StatusOK, map[string]any{
		"response_type":   loginSuccessful,
		"user":            u,
		"organization_id": org,
	})
}

// storeFailed answers 503 when the state store does not answer.
func (s *server) storeFailed(w http.ResponseWriter, op string, err error) {
	s.metrics.inc("dashauth_store_errors_total", "", "")
	s.log.Error("state store failed", "op", op, "err", err)
	writeError(w, http.StatusServiceUnavailable, "state_unavailable")
}

// handleLoginCode mails a fresh code to a member. Every well-formed address
// gets the same answer after the same work, so the endpoint does not tell
// who is a member: a code is made and stored for every address, and only
// the mail, sent after the response, depends on membership.
func (s *server) handleLoginCode(w http.ResponseWriter, r *http.Request) {
	addr, ok := decodeAddress(w, r, nil)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()

	id := s.addressID(addr)
	limits := []struct {
		key    string
		window time.Duration
		max    int64
	}{
		{s.key("rl", "client", clientBucket(s.clientIP(r))), perClientWindow, perClientMax},
		{s.key("rl", "addr1m", id), perAddressGap, 1},
		{s.key("rl", "addr15m", id), perAddressWindow, perAddressMax},
	}
	// Each limit is a sliding window (store.Admit): "5 per 15 minutes" holds over every
	// 15-minute span, not only within fixed windows, where a burst at one window's end and
	// another at the next one's start would add up. The limits are checked in this order and
	// the first refusal answers, so a request refused by one limit is not recorded by the
	// later ones (a client over its limit does not use up an address's codes). It is
	// recorded by the earlier ones: refused requests still count against the client.
	for _, l := range limits {
		admitted, retryAfter, err := s.store.Admit(ctx, l.key, l.max, l.window)
		if err != nil {
			s.storeFailed(w, "rate limit", err)
			return
		}
		if !admitted {
			s.metrics.inc("dashauth_rate_limited_total", "", "")
			// Whole seconds, rounded up so a retry at Retry-After is admitted (RFC 9110
			// 10.2.3 allows only delay-seconds or a date), and at least 1.
			secs := max(1, int64((retryAfter+time.Second-1)/time.Second))
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
			writeError(w, http.StatusTooManyRequests, "rate_limited")
			return
		}
	}

	code, err := newCode()
	if err != nil {
		s.log.Error("login code: no randomness", "err", err) // unreachable: crypto/rand does not fail on Linux
		writeError(w, http.StatusServiceUnavailable, "unavailable")
		return
	}
	// A new code replaces the old one. Its tries are counted under its own
	// hash (see handleVerifyCode), so it starts with all five.
	if err := s.store.Set(ctx, s.key("code", id), s.codeHash(addr, code), codeTTL); err != nil {
		s.storeFailed(w, "store code", err)
		return
	}

	if _, found := s.members.lookup(addr); found {
		s.goBackground(func() { s.mailCode(addr, code) })
	}
	s.signinResponse(w, http.StatusOK, codeSent)
}

// clientBucket names the client a rate limit counts. An IPv6 host is given
// a whole /64 and picks its own addresses in it (RFC 4291 section 2.5.1
// fixes 64-bit interface identifiers; RFC 8981 has hosts rotate them), so
// counting single IPv6 addresses would let one host use a fresh address
// for every request. IPv4 addresses count one by one.
func clientBucket(a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64) // cannot fail: 64 bits fit an IPv6 address
		return p.String()
	}
	return a.String()
}

func (s *server) mailCode(addr, code string) {
	// The request is over; the mailer's own timeout bounds the send.
	err := s.mail.Send(context.Background(), message{
		To:      addr,
		Subject: "Your sign-in code",
		Text: "Your sign-in code is:\r\n\r\n" + code + "\r\n\r\n" +
			"It is valid for 10 minutes and can be used once.\r\n" +
			"If you did not ask to sign in, ignore this mail.\r\n",
		HTML: "<p>Your sign-in code is:</p><p style=\"font-size:24px;font-family:monospace\"><b>" + code + "</b></p>" +
			"<p>It is valid for 10 minutes and can be used once.</p>" +
			"<p>If you did not ask to sign in, ignore this mail.</p>",
	})
	if err != nil {
		s.metrics.inc("dashauth_mails_total", "result", "failed")
		s.log.Error("login code mail failed", "err", err)
		return
	}
	s.metrics.inc("dashauth_mails_total", "result", "sent")
}

// handleVerifyCode checks a code. The order matters: the try is counted
// before the comparison, so parallel guesses cannot exceed the limit, and
// a matching code is taken with an atomic delete, so it works only once.
// Tries are counted per stored code (the key holds a prefix of its hash):
// a counter shared by all of an address's codes would have to be reset for
// each new code, and guesses racing that reset would go uncounted.
func (s *server) handleVerifyCode(w http.ResponseWriter, r *http.Request) {
	var code string
	addr, ok := decodeAddress(w, r, &code)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()

	id := s.addressID(addr)
	codeKey := s.key("code", id)
	stored, found, err := s.store.Get(ctx, codeKey)
	if err != nil {
		s.storeFailed(w, "read code", err)
		return
	}
	if !found {
		s.signinResponse(w, http.StatusBadRequest, linkExpired) // expired, used or burned
		return
	}
	// The counter outlives the code (it starts at the first try), so once
	// five tries are used the code stays burned until it expires.
	tries, _, err := s.store.Incr(ctx, s.key("codetries", id, stored[:min(16, len(stored))]), codeTTL)
	if err != nil {
		s.storeFailed(w, "count try", err)
		return
	}
	if tries > codeMaxTries {
		s.signinResponse(w, http.StatusBadRequest, linkExpired)
		return
	}
	if !validCode(code) || !hmac.Equal([]byte(s.codeHash(addr, code)), []byte(stored)) {
		s.signinResponse(w, http.StatusBadRequest, linkInvalid)
		return
	}
	taken, err := s.store.Del(ctx, codeKey)
	if err != nil {
		s.storeFailed(w, "take code", err)
		return
	}
	if !taken {
		s.signinResponse(w, http.StatusBadRequest, linkExpired) // a parallel request used it first
		return
	}

	m, found := s.members.lookup(addr)
	switch {
	case !found:
		s.signinResponse(w, http.StatusForbidden, membershipNotFound)
	case !m.Active:
		s.signinResponse(w, http.StatusForbidden, membershipDeactivated)
	default:
		u := user{ID: emailUserID(addr), Email: addr, FirstName: m.FirstName, LastName: m.LastName}
		s.signinSuccess(w, r, u, m.OrganizationID, sessionRecord{Method: "email_code"})
	}
}

// stillMember reports whether the session's person is still an active
// member of its organization: in the members file for email+code, in
// WorkOS for WorkOS (one API call). A session of the flow that is now off
// is no longer a member.
func (s *server) stillMember(ctx context.Context, rec sessionRecord) (bool, error) {
	switch {
	case rec.Method == "email_code" && !s.cfg.WorkOS:
		m, ok := s.members.lookup(rec.User.Email)
		return ok && m.Active && m.OrganizationID == rec.Org, nil
	case rec.Method == "workos" && s.workos != nil:
		status, err := s.workos.membershipStatus(ctx, rec.User.ID, rec.Org)
		return status == "active", err
	}
	return false, nil
}

// emailUserID is the stable user id of an email+code member: a hash of the
// address, so it survives restarts and key rotation.
func emailUserID(addr string) string {
	sum := sha256.Sum256([]byte("dashauth user\x00" + addr))
	return "user_" + hex.EncodeToString(sum[:13])
}

// decodeAddress reads an email+code request body: {"email"} or, when code
// is not nil, {"email", "code"}. It answers 400 itself and returns the
// address parsed and lower-cased.
func decodeAddress(w http.ResponseWriter, r *http.Request, code *string) (string, bool) {
	var email string
	fields, required := map[string]*string{"email": &email}, []string{"email"}
	if code != nil {
		fields["code"], required = code, append(required, "code")
	}
	if !decodeFields(w, r, fields, required...) {
		return "", false
	}
	addr, ok := parseEmail(email)
	if !ok {
		writeError(w, http.StatusBadRequest, "invalid_email")
		return "", false
	}
	return addr, true
}

// newCode returns codeDigits decimal digits, uniform, from crypto/rand.
func newCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// validCode accepts exactly six ASCII digits: no sign, no spaces, no
// full-width digits, no newline.
func validCode(code string) bool {
	if len(code) != codeDigits {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

// codeHash is what the store keeps of a code: an HMAC under a key the store
// never sees, bound to the address, so a copy of Redis reveals no code.
func (s *server) codeHash(addr, code string) string {
	mac := hmac.New(sha256.New, s.codeKey)
	mac.Write([]byte("code\x00" + addr + "\x00" + code))
	return hex.EncodeToString(mac.Sum(nil))
}

// addressID names an address in store keys without writing it there.
func (s *server) addressID(addr string) string {
	mac := hmac.New(sha256.New, s.codeKey)
	mac.Write([]byte("address\x00" + addr))
	return hex.EncodeToString(mac.Sum(nil))
}

// parseEmail accepts one bare address of at most maxAddressBytes (the
// longest SMTP can carry), local@domain, and returns it in
// lower case (addresses are compared case-insensitively). It is stricter
// than RFC 5322 on purpose: no display name, no quoted local part, no
// comments, no comma, no whitespace or control bytes, and a dotted domain
// of letters, digits and hyphens.
func parseEmail(s string) (string, bool) {
	if len(s) == 0 || len(s) > maxAddressBytes {
		return "", false
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || len(local) > 64 || domain == "" || strings.Contains(domain, "@") {
		return "", false
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if !(isAlnum(c) || strings.IndexByte(".!#$%&'*+/=?^_`{|}~-", c) >= 0) {
			return "", false
		}
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return "", false
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return "", false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", false
		}
		for i := 0; i < len(l); i++ {
			if !isAlnum(l[i]) && l[i] != '-' {
				return "", false
			}
		}
	}
	return strings.ToLower(s), true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// member is one entry of MEMBERS_FILE.
type member struct {
	Email          string `json:"email"`
	OrganizationID string `json:"organization_id"`
	Role           string `json:"role"`
	Active         bool   `json:"active"`
	FirstName      string `json:"first_name,omitempty"`
	LastName       string `json:"last_name,omitempty"`
}

// memberList is MEMBERS_FILE, reloaded when the file changes. With no file
// (development mode) anyone may sign in, to the organization "org_dev".
type memberList struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	modTime time.Time
	size    int64
	byEmail map[string]member
}

// Bounds on a member's fields: ids like WorkOS's (a prefix and a ULID) fit
// in 64 bytes, names in 256.
const (
	maxMemberField = 64
	maxMemberName  = 256
)

// maxMembersFile bounds the members file read into memory.
const maxMembersFile = 16 << 20

func loadMembers(path string, log *slog.Logger) (*memberList, error) {
	ml := &memberList{path: path, log: log}
	if path == "" {
		return ml, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("MEMBERS_FILE: %w", err)
	}
	byEmail, err := readMembers(path)
	if err != nil {
		return nil, fmt.Errorf("MEMBERS_FILE: %w", err)
	}
	ml.modTime, ml.size, ml.byEmail = fi.ModTime(), fi.Size(), byEmail
	return ml, nil
}

// lookup finds addr's membership, first reloading the file if it changed.
// A broken file keeps the last good list, and says why in the log.
func (ml *memberList) lookup(addr string) (member, bool) {
	if ml.path == "" {
		return member{Email: addr, OrganizationID: "org_dev", Role: "admin", Active: true}, true
	}
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if fi, err := os.Stat(ml.path); err != nil {
		ml.log.Error("members file unreadable; keeping the last good list", "path", ml.path, "err", err)
	} else if !fi.ModTime().Equal(ml.modTime) || fi.Size() != ml.size {
		ml.modTime, ml.size = fi.ModTime(), fi.Size()
		if byEmail, err := readMembers(ml.path); err != nil {
			ml.log.Error("members file is broken; keeping the last good list", "path", ml.path, "err", err)
		} else {
			ml.byEmail = byEmail
			ml.log.Info("members file reloaded", "path", ml.path, "members", len(byEmail))
		}
	}
	m, ok := ml.byEmail[addr]
	return m, ok
}

// readMembers parses a members file strictly: unknown fields, a bad address
// or a missing organization make the whole file invalid.
func readMembers(path string) (map[string]member, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxMembersFile+1))
	if err != nil {
		return nil, err
	}
	return parseMembers(data)
}

var errMembersFile = errors.New("members file")

func parseMembers(data []byte) (map[string]member, error) {
	if len(data) > maxMembersFile {
		return nil, fmt.Errorf("%w: larger than %d bytes", errMembersFile, maxMembersFile)
	}
	var doc struct {
		Members []member `json:"members"`
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %v", errMembersFile, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the JSON object", errMembersFile)
	}
	byEmail := make(map[string]member, len(doc.Members))
	for i, m := range doc.Members {
		addr, ok := parseEmail(m.Email)
		if !ok {
			return nil, fmt.Errorf("%w: member %d: %q is not an email address", errMembersFile, i, m.Email)
		}
		if m.OrganizationID == "" {
			return nil, fmt.Errorf("%w: member %d (%s): organization_id is required", errMembersFile, i, addr)
		}
		// The organization and the names go into the session cookies,
		// which must stay under 4096 bytes (RFC 6265 section 6.1).
		if len(m.OrganizationID) > maxMemberField || len(m.Role) > maxMemberField ||
			len(m.FirstName) > maxMemberName || len(m.LastName) > maxMemberName {
			return nil, fmt.Errorf("%w: member %d (%s): organization_id or role over %d bytes, or a name over %d",
				errMembersFile, i, addr, maxMemberField, maxMemberName)
		}
		if _, dup := byEmail[addr]; dup {
			return nil, fmt.Errorf("%w: member %d: %s is listed twice", errMembersFile, i, addr)
		}
		m.Email = addr
		byEmail[addr] = m
	}
	return byEmail, nil
}
