package ndes_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ndes"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
)

// step is one request to the page (or, with advance, time passing first).
type step struct {
	advance    time.Duration
	from       string // RemoteAddr
	creds      string // "good", "bad" or "none"
	want       int
	retryAfter string // expected Retry-After; "" for none
}

func steps(n int, s step) []step {
	out := make([]step, n)
	for i := range out {
		out[i] = s
		if i > 0 {
			out[i].advance = 0
		}
	}
	return out
}

func concat(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

const (
	addrA = "192.0.2.10:40000"
	addrB = "198.51.100.7:40001"
)

var (
	badA  = step{from: addrA, creds: "bad", want: http.StatusUnauthorized}
	goodA = step{from: addrA, creds: "good", want: http.StatusOK}
)

func locked(from, creds string, retryAfter string) step {
	return step{from: from, creds: creds, want: http.StatusTooManyRequests, retryAfter: retryAfter}
}

func after(d time.Duration, s step) step { s.advance = d; return s }

// TestLockout drives the page with an injected clock: five wrong logins
// from one address lock it out for a minute, during which even the right
// password is refused; each further wrong login after a lockout doubles it
// up to 15 minutes; a right login outside a lockout, or a quiet window,
// clears the count; other addresses are not affected.
func TestLockout(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"five failures lock; a correct password is refused meanwhile", concat(
			steps(4, badA),
			[]step{
				locked(addrA, "bad", "60"),
				locked(addrA, "good", "60"),
				locked(addrA, "none", "60"),
				after(30*time.Second, locked(addrA, "good", "30")),
				{from: addrB, creds: "good", want: http.StatusOK}, // another address is served
				after(30*time.Second, goodA),                      // lockout over: served, count cleared
			},
			steps(4, badA),
			[]step{locked(addrA, "bad", "60")},
		)},
		{"backoff doubles up to 15 minutes", concat(
			steps(4, badA),
			[]step{
				locked(addrA, "bad", "60"),
				after(time.Minute, locked(addrA, "bad", "120")),
				after(2*time.Minute, locked(addrA, "bad", "240")),
				after(4*time.Minute, locked(addrA, "bad", "480")),
				after(8*time.Minute, locked(addrA, "bad", "900")),
				after(15*time.Minute, locked(addrA, "bad", "900")),
				after(15*time.Minute-time.Second, locked(addrA, "good", "1")),
				after(time.Second, goodA),
			},
		)},
		{"the count forgets after a quiet window", concat(
			steps(4, badA),
			[]step{after(15*time.Minute, badA)}, // the window since the last failure has passed: starts again at 1
			steps(3, badA),
			[]step{locked(addrA, "bad", "60")},
		)},
		{"a lockout is forgotten a window after it ended", concat(
			steps(4, badA),
			[]step{
				locked(addrA, "bad", "60"),
				after(time.Minute+15*time.Minute, badA), // no doubling: the record is gone
			},
		)},
		{"requests without credentials are not failures", concat(
			steps(20, step{from: addrA, creds: "none", want: http.StatusUnauthorized}),
			[]step{goodA},
		)},
		{"a success clears the count", concat(
			steps(4, badA), []step{goodA}, steps(4, badA), []step{goodA},
		)},
		{"an IPv6 /64 is one client", concat(
			steps(2, step{from: "[2001:db8:0:1::1]:1", creds: "bad", want: http.StatusUnauthorized}),
			steps(2, step{from: "[2001:db8:0:1::2]:1", creds: "bad", want: http.StatusUnauthorized}),
			[]step{
				locked("[2001:db8:0:1:ffff::9]:1", "bad", "60"),
				locked("[2001:db8:0:1::1]:1", "good", "60"),
				{from: "[2001:db8:0:2::1]:1", creds: "good", want: http.StatusOK},
			},
		)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
			m := &minter{}
			var logBuf bytes.Buffer
			var mu sync.Mutex
			log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logBuf}, nil))
			h, err := ndes.New(m, ndes.Config{Username: user, Password: pass, Clock: clock, Audit: &auditLog{}}, log)
			if err != nil {
				t.Fatal(err)
			}
			served := 0
			for i, s := range tc.steps {
				clock.Advance(s.advance)
				req := httptest.NewRequest(http.MethodGet, "/certsrv/mscep_admin/", nil)
				req.RemoteAddr = s.from
				switch s.creds {
				case "good":
					req.SetBasicAuth(user, pass)
				case "bad":
					req.SetBasicAuth(user, fmt.Sprintf("guess-%d", i))
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != s.want || rec.Header().Get("Retry-After") != s.retryAfter {
					t.Fatalf("step %d (%+v): status %d Retry-After %q, want %d %q", i, s, rec.Code, rec.Header().Get("Retry-After"), s.want, s.retryAfter)
				}
				if rec.Code == http.StatusOK {
					served++
				}
				if rec.Code == http.StatusTooManyRequests && strings.Contains(rec.Body.String(), "password is") {
					t.Fatalf("step %d: a 429 carries the page", i)
				}
			}
			// A refused right password minted nothing.
			if m.count() != served {
				t.Errorf("%d challenges minted for %d pages served", m.count(), served)
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Contains(logBuf.String(), pass) || strings.Contains(logBuf.String(), "guess-") {
				t.Errorf("the log carries a password:\n%s", logBuf.String())
			}
		})
	}
}

// TestLockoutIsLogged: the failures and the lockout reach the log and the
// audit trail with the address, and a locked-out address's further
// requests flood neither: they are recorded once a minute, with a count.
func TestLockoutIsLogged(t *testing.T) {
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	var logBuf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logBuf}, nil))
	audit := &auditLog{}
	// A lockout longer than a minute, to see a second record of refusals.
	h, err := ndes.New(&minter{}, ndes.Config{Username: user, Password: pass, Clock: clock, Audit: audit,
		Lockout: ndes.Lockout{Base: 5 * time.Minute}}, log)
	if err != nil {
		t.Fatal(err)
	}
	wrong := func() {
		req := httptest.NewRequest(http.MethodGet, "/certsrv/mscep_admin/", nil)
		req.RemoteAddr = addrA
		req.SetBasicAuth(user, "wrong")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	for range 1000 {
		wrong()
	}
	mu.Lock()
	out := logBuf.String()
	mu.Unlock()
	// Four failures, the lockout, the first refusal during it.
	if n := strings.Count(out, "\n"); n != 6 {
		t.Errorf("%d log lines for 1000 wrong logins, want 6 (four failures, one lockout, one refusal during it):\n%s", n, out)
	}
	if !strings.Contains(out, "locked out") || !strings.Contains(out, "192.0.2.10") {
		t.Errorf("the lockout is not logged with the address:\n%s", out)
	}
	if n := len(audit.list()); n != 6 {
		t.Errorf("%d audit events for 1000 wrong logins, want 6: %+v", n, audit.list())
	}
	// A minute on, the next refusal's record counts those held back.
	clock.Advance(time.Minute)
	wrong()
	evs := audit.list()
	if len(evs) != 7 {
		t.Fatalf("%d audit events, want 7: %+v", len(evs), evs)
	}
	if last := evs[6]; last.Type != pki.EventNDESLoginFailed ||
		!strings.Contains(last.Reason, "not checked: 995 attempts from this address since the last such record") {
		t.Errorf("record of the refusals held back: %+v", last)
	}
}
