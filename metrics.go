package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// metrics is a hand-written Prometheus counter set: a handful of counters do
// not justify a client library, and the text format is four lines of spec
// (https://prometheus.io/docs/instrumenting/exposition_formats/).
type metrics struct {
	mu     sync.Mutex
	counts map[string]uint64 // full series name, labels included → value
}

// counterHelp names every counter family and says what it counts. Only these
// families can be incremented, so a typo fails the tests instead of
// silently creating a new series.
var counterHelp = map[string]string{
	"dashauth_signins_total":           "Sign-in answers by response_type.",
	"dashauth_webhook_events_total":    "WorkOS webhook deliveries by outcome.",
	"dashauth_mails_total":             "Mails handed to SMTP (or the log) by result.",
	"dashauth_dedup_hits_total":        "Webhook events answered from the de-duplication record.",
	"dashauth_store_errors_total":      "Calls to the state store (Redis) that failed.",
	"dashauth_rate_limited_total":      "Requests refused with 429.",
	"dashauth_http_panics_total":       "Handler panics recovered (always a bug).",
	"dashauth_refresh_reuse_total":     "Spent refresh tokens presented again, by action.",
	"dashauth_webhook_undeduped_total": "Webhook events delivered without de-duplication because the store failed.",
	"dashauth_workos_errors_total":     "WorkOS sign-ins answered with an error rather than a response_type, by reason.",
}

func newMetrics() *metrics {
	m := &metrics{counts: make(map[string]uint64)}
	// Series a dashboard alerts on exist from the start at zero.
	for _, rt := range []string{"LOGIN_SUCCESSFUL", "MEMBERSHIP_DEACTIVATED", "MEMBERSHIP_NOT_FOUND",
		"ORGANIZATION_SELECTION_REQUIRED", "LINK_INVALID", "LINK_EXPIRED", "CODE_SENT"} {
		m.add("dashauth_signins_total", "response_type", rt, 0)
	}
	for _, o := range []string{"delivered", "duplicate", "ignored", "rejected", "failed"} {
		m.add("dashauth_webhook_events_total", "outcome", o, 0)
	}
	for _, r := range []string{"sent", "failed"} {
		m.add("dashauth_mails_total", "result", r, 0)
	}
	m.add("dashauth_dedup_hits_total", "", "", 0)
	m.add("dashauth_store_errors_total", "", "", 0)
	m.add("dashauth_webhook_undeduped_total", "", "", 0)
	return m
}

// inc adds one to family{label="value"}, or to the bare family when label is "".
func (m *metrics) inc(family, label, value string) { m.add(family, label, value, 1) }

func (m *metrics) add(family, label, value string, n uint64) {
	if _, ok := counterHelp[family]; !ok {
		panic("metrics: unknown counter family " + family) // unreachable: a programming error
	}
	series := family
	if label != "" {
		series = fmt.Sprintf("%s{%s=%q}", family, label, value)
	}
	m.mu.Lock()
	m.counts[series] += n
	m.mu.Unlock()
}

// get returns one series' value; tests use it.
func (m *metrics) get(family, label, value string) uint64 {
	series := family
	if label != "" {
		series = fmt.Sprintf("%s{%s=%q}", family, label, value)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[series]
}

// write renders the Prometheus text exposition format, families sorted.
func (m *metrics) write(w io.Writer) {
	m.mu.Lock()
	series := make([]string, 0, len(m.counts))
	for s := range m.counts {
		series = append(series, s)
	}
	values := make(map[string]uint64, len(m.counts))
	for s, v := range m.counts {
		values[s] = v
	}
	m.mu.Unlock()

	sort.Strings(series)
	var b strings.Builder
	last := ""
	for _, s := range series {
		family, _, _ := strings.Cut(s, "{")
		if family != last {
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n", family, counterHelp[family], family)
			last = family
		}
		fmt.Fprintf(&b, "%s %d\n", s, values[s])
	}
	io.WriteString(w, b.String())
}
