package scepserver_test

import (
	"context"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/store"
)

// What the handler refuses before the service sees a request is counted
// as a refusal, as the service's own refusals are: a copy of a refused
// request (refused at once as a replay), a message whose signingTime is
// far off, an envelope that does not open. Each is counted once, under
// its code.
func TestRefusalsBeforeTheServiceAreCounted(t *testing.T) {
	counter := &outcomeCounter{}
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Observer: counter}})
	send := func(der []byte, msg *scep.PKIMessage) *scep.PKIMessage {
		t.Helper()
		resp, body := ts.postTo(t, "/scep", der)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
		}
		return ts.parseReply(t, body, msg)
	}
	wrong := reqParams{key: testKey(t, 1), challenge: "not the challenge", txID: "tx-counted-refusal"}
	der, msg := ts.build(t, wrong)
	counter.take()
	wantFailure(t, send(der, msg), scep.BadRequest)
	if got, want := counter.take(), map[string]int{enroll.ResultRefused: 1}; !maps.Equal(got, want) {
		t.Errorf("the refused request counted %v, want %v", got, want)
	}
	rep := send(der, msg)
	wantFailure(t, rep, scep.BadRequest)
	if got, want := counter.take(), map[string]int{enroll.ResultRefused: 1}; !maps.Equal(got, want) {
		t.Errorf("its copy, refused as a replay (%q), counted %v, want %v", rep.FailInfoText, got, want)
	}

	skewed := reqParams{key: testKey(t, 2), txID: "tx-counted-skew", signingTime: ts.Clock.Now().Add(-48 * 3600e9)}
	_, rep = ts.exchange(t, skewed)
	wantFailure(t, rep, scep.BadTime)
	if got, want := counter.take(), map[string]int{enroll.ResultRefused: 1}; !maps.Equal(got, want) {
		t.Errorf("a signingTime two days off counted %v, want %v", got, want)
	}

	garbled := reqParams{key: testKey(t, 2), txID: "tx-counted-envelope", envelope: func(b []byte) []byte {
		b = append([]byte(nil), b...)
		b[len(b)-1] ^= 0xff // the last byte of the encrypted content
		return b
	}}
	_, rep = ts.exchange(t, garbled)
	wantFailure(t, rep, scep.BadMessageCheck)
	if got, want := counter.take(), map[string]int{enroll.ResultRefused: 1}; !maps.Equal(got, want) {
		t.Errorf("an envelope that does not open counted %v, want %v", got, want)
	}
}

// A PKIOperation at a path naming no profile is refused (404) before its
// message is read, and recorded and counted under "unknown", as EST's
// unknown label is; the profile asked is in the audit record, never in a
// metric label. GetCACaps there is no enrollment call: nothing counted.
func TestPKIOperationAtAnUnknownProfileIsCounted(t *testing.T) {
	observed := &outcomeLog{}
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Observer: observed}})
	der, _ := ts.build(t, reqParams{key: testKey(t, 1), txID: "tx-unknown-profile"})
	if resp, body := ts.postTo(t, "/scep/no-such-profile-7f3a", der); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HTTP %d %s, want 404", resp.StatusCode, body)
	}
	resp, err := http.Get(ts.URL + "/scep/no-such-profile-7f3a?operation=GetCACaps")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := []enroll.Outcome{{Protocol: string(pki.ProtocolSCEP), Profile: enroll.UnknownProfile, Result: enroll.ResultRefused, Code: pki.ENotFound}}
	if !slices.Equal(observed.got, want) {
		t.Errorf("outcomes %+v, want %+v", observed.got, want)
	}
	evs, err := ts.Store.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventRefused, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Profile != "no-such-profile-7f3a" || !strings.Contains(evs[0].Reason, "unknown profile") {
		t.Errorf("refusal events %+v, want one naming the profile asked", evs)
	}
}

// outcomeLog keeps every outcome the service counts, in order.
type outcomeLog struct {
	mu  sync.Mutex
	got []enroll.Outcome
}

func (l *outcomeLog) Enrolled(o enroll.Outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, o)
}

// A GET refused before any message is read names what was asked: the
// profile (as the audit record does) and the operation, with the ones
// served, quoted with Go escapes as the client chose them.
func TestRefusalsNameWhatWasAsked(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	for _, tt := range []struct {
		path   string
		status int
		want   string
	}{
		{"/scep/nosuch?operation=GetCACaps", http.StatusNotFound, `unknown profile "nosuch"`},
		{"/scep?operation=GetCAcaps", http.StatusBadRequest, `unsupported operation "GetCAcaps": want GetCACaps, GetCACert, GetNextCACert or PKIOperation`},
		{"/scep?operation=%1B%5B31m", http.StatusBadRequest, `unsupported operation "\x1b[31m"`},
	} {
		resp, err := http.Get(ts.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.want) {
			t.Errorf("GET %s: HTTP %d %q, want %d with %q", tt.path, resp.StatusCode, body, tt.status, tt.want)
		}
	}
}
