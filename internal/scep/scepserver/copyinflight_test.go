package scepserver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/scep/scepserver"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// copyInFlightWindow is enroll's: how long after a message was first
// received a copy that finds nothing of it is told to retry.
const copyInFlightWindow = 5 * time.Minute

// heldWebhook is a challenge webhook that holds each check until released,
// so that a test can send a copy of a request while its first copy is
// still checking its challenge (its pair remembered, nothing claimed).
type heldWebhook struct {
	secret  string
	entered chan struct{} // one value per check, as it starts
	release chan struct{} // closed: every check answers
	calls   atomic.Int32
}

// newHeldWebhookServer is a test server on db (nil: SQLite) whose "mdm"
// profile checks challenges at a heldWebhook taking "mdm-secret".
func newHeldWebhookServer(t *testing.T, db store.Store) (*testServer, *heldWebhook) {
	t.Helper()
	mdm := pki.DefaultProfile()
	mdm.Name, mdm.ChallengeMode = "mdm", enroll.ChallengeWebhook
	hook := &heldWebhook{secret: "mdm-secret", entered: make(chan struct{}, 4), release: make(chan struct{})}
	ts := newTestServer(t, serverOptions{db: db, enroll: enroll.Config{
		Profiles:       map[string]pki.Profile{"default": pki.DefaultProfile(), mdm.Name: mdm},
		DefaultProfile: "default", Webhook: hook}})
	return ts, hook
}

// postAnswer is what postInBackground's request got.
type postAnswer struct {
	status int
	body   []byte
	err    error
}

// postInBackground posts der as a PKIOperation to path on ts and sends
// back what it got, for a copy to be sent while it runs.
func postInBackground(ts *testServer, path string, der []byte) <-chan postAnswer {
	got := make(chan postAnswer, 1)
	go func() {
		resp, err := http.Post(ts.URL+path+"?operation=PKIOperation", "application/x-pki-message", bytes.NewReader(der))
		if err != nil {
			got <- postAnswer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		got <- postAnswer{resp.StatusCode, body, err}
	}()
	return got
}

func (w *heldWebhook) Verify(ctx context.Context, c enroll.ChallengeCheck) (bool, string, error) {
	w.calls.Add(1)
	w.entered <- struct{}{}
	select {
	case <-w.release:
	case <-ctx.Done():
		return false, "", ctx.Err()
	}
	return c.Challenge == w.secret, "not the MDM's challenge", nil
}

// testStores are the stores a replay test runs against: SQLite, and
// PostgreSQL when SCEPTER_TEST_POSTGRES_URL names a server.
var testStores = map[string]func(t *testing.T) store.Store{
	"sqlite": func(*testing.T) store.Store { return nil },
	"postgres": func(t *testing.T) store.Store {
		pg, err := postgres.Open(context.Background(), pgtest.Database(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pg.Close() })
		return pg
	},
}

// The reviewer's scenario: copies of one fresh PKCSReq sent at the same
// moment (a load balancer retrying the POST). The second arrives while the
// first checks its challenge at the webhook: the pair is remembered, but
// nothing is claimed, issued or held yet. It is told to retry (503 with
// Retry-After, audited as a copy of which nothing is issued yet), not refused as a
// replay, and the webhook is not asked for it; sent again once the first
// issued, it gets that certificate, as a resend does. One certificate in
// all.
func TestCopyOfARequestCheckingItsChallengeIsToldToRetry(t *testing.T) {
	for name, open := range testStores {
		t.Run(name, func(t *testing.T) {
			ts, hook := newHeldWebhookServer(t, open(t))
			key := testKey(t, 1)
			der, msg := ts.build(t, reqParams{key: key, challenge: hook.secret, path: "/scep/mdm"})

			first := postInBackground(ts, "/scep/mdm", der)
			<-hook.entered // the first copy checks its challenge

			resp, body := ts.postTo(t, "/scep/mdm", der)
			close(hook.release) // the first copy goes on, whatever the copy got
			wantRetry(t, ts, "a copy while the first checks its challenge", resp, body, msg)
			if n := hook.calls.Load(); n != 1 {
				t.Errorf("the webhook was asked %d times, want 1 (a copy checks no challenge)", n)
			}
			evs, err := ts.Store.ListAudit(context.Background(), store.AuditFilter{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			audited := false
			for _, ev := range evs {
				audited = audited || (ev.TransactionID == msg.TransactionID && strings.Contains(ev.Reason, "a copy of this message") &&
					strings.Contains(ev.Reason, "nothing is issued for it yet"))
			}
			if !audited {
				t.Errorf("no audit event of transaction %s says a copy of it came moments ago and nothing is issued yet: %+v", msg.TransactionID, evs)
			}

			a := <-first
			if a.err != nil || a.status != http.StatusOK {
				t.Fatalf("the first copy: HTTP %d, %v, %s", a.status, a.err, a.body)
			}
			issued, _ := ts.issuedCert(t, ts.parseReply(t, a.body, msg), msg.SignerCert, key)

			_, body = ts.postTo(t, "/scep/mdm", der)
			wantSentAgain(t, ts, "the copy sent again after the first issued", ts.parseReply(t, body, msg), msg.SignerCert, key, issued)
			if n := ts.certCount(t); n != 1 {
				t.Errorf("%d certificates recorded, want 1", n)
			}
		})
	}
}

// A copy of a request of which nothing is found (no certificate, no claim
// since it first arrived, nothing held) is told to retry while its first
// copy may still be on its way to a claim (copyInFlightWindow after it
// arrived), and refused as a replay after that, as before: its node died
// before claiming anything. A copy of one whose first copy was refused is
// refused as a replay at once (its run marked its pair). A claim that an
// earlier run released (a run answered 503 releases its claim, and its
// retry's copies meet it) is no claim of the first copy's; one it ended
// since it arrived says it is done. Nothing is issued.
func TestReplayOfARequestOfWhichNothingIsFound(t *testing.T) {
	for name, open := range testStores {
		t.Run(name, func(t *testing.T) {
			for _, tc := range []struct {
				name  string
				first string // what became of the first copy
				retry bool   // a copy within copyInFlightWindow is told to retry
			}{
				{"its first copy was refused", "refused", false},
				{"its first copy's node died before claiming", "died", true},
				{"an earlier run released the claim", "released before", true},
				{"the first copy released its claim", "released since", false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					ts := newTestServer(t, serverOptions{db: open(t)})
					ctx := context.Background()
					key := testKey(t, 1)
					der, msg := ts.build(t, reqParams{key: key, challenge: "wrong"})
					// remember remembers the pair as the handler does (for
					// its default lifetime), and runs nothing.
					remember := func() {
						signer := sha256.Sum256(msg.SignerCert.RawSubjectPublicKeyInfo)
						pair := append(append([]byte(nil), msg.SenderNonce...), signer[:]...)
						if err := ts.Service.RememberNonce(ctx, msg.TransactionID, pair, 2*scepserver.DefaultMaxClockSkew); err != nil {
							t.Fatal(err)
						}
					}
					// claimAndRelease claims the transaction at `at` and
					// releases it a second later, as a run that failed does.
					claimAndRelease := func(at time.Time) {
						hash, err := store.PublicKeyHash(key.Public())
						if err != nil {
							t.Fatal(err)
						}
						claim := store.TransactionClaim{KeyHash: hash, Profile: "default", TransactionID: msg.TransactionID,
							Claimant: []byte("a run that failed"), At: at, Expires: at.Add(copyInFlightWindow)}
						if _, err := ts.Store.ReserveSerialClaiming(ctx, claim, ts.Authority.Issuer.ID, "0dead", []byte("tbs")); err != nil {
							t.Fatal(err)
						}
						claim.At = at.Add(time.Second)
						if err := ts.Store.ReleaseTransactionClaim(ctx, claim); err != nil {
							t.Fatal(err)
						}
					}
					switch tc.first {
					case "refused":
						_, body := ts.post(t, der)
						wantFailure(t, ts.parseReply(t, body, msg), scep.BadRequest)
					case "died":
						remember()
					case "released before":
						claimAndRelease(ts.Clock.Now().Add(-time.Minute))
						remember()
					case "released since":
						remember()
						claimAndRelease(ts.Clock.Now())
					}

					ts.Clock.Advance(copyInFlightWindow - time.Second)
					resp, body := ts.post(t, der)
					if !tc.retry {
						wantReplay(t, "a copy of a request refused, or whose claim ended since it arrived", ts.parseReply(t, body, msg))
					} else {
						wantRetry(t, ts, "a copy within copyInFlightWindow of the first", resp, body, msg)
					}

					ts.Clock.Advance(time.Second) // the first copy arrived copyInFlightWindow ago
					_, body = ts.post(t, der)
					wantReplay(t, "a copy sent long after the first", ts.parseReply(t, body, msg))
					if n := ts.certCount(t); n != 0 {
						t.Errorf("%d certificates recorded, want 0", n)
					}
				})
			}
		})
	}
}

// wantRetry checks an answer is 503 with Retry-After: the client is told to
// send the message again later.
func wantRetry(t *testing.T, ts *testServer, what string, resp *http.Response, body []byte, msg *scep.PKIMessage) {
	t.Helper()
	if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" {
		return
	}
	got := string(body)
	if resp.StatusCode == http.StatusOK {
		rep := ts.parseReply(t, body, msg)
		got = fmt.Sprintf("pkiStatus %s failInfo %s (%s)", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
	}
	t.Fatalf("%s: HTTP %d, Retry-After %q, %s; want 503 with Retry-After", what, resp.StatusCode, resp.Header.Get("Retry-After"), got)
}
