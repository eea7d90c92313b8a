package scepserver_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/scep/scepserver"
	"github.com/scepter/scepter/internal/server"
)

// secondNode serves SCEP with ts's service (its store and CA) through a
// handler of its own, as another node on the same store does, and returns
// its URL.
func secondNode(t *testing.T, ts *testServer) string {
	t.Helper()
	h, err := scepserver.New(ts.Service, ts.Clock, slog.New(slog.DiscardHandler), scepserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mux, err := server.TLSMux(server.Handlers{SCEP: h})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// postAt POSTs a pkiMessage to the SCEP path of the server at base.
func postAt(t *testing.T, base string, der []byte) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(base+"/scep?operation=PKIOperation", "application/x-pki-message", bytes.NewReader(der))
	return readResponse(t, resp, err)
}

// markFails is a service whose store cannot record that a run was refused.
type markFails struct {
	scepserver.Service
	calls atomic.Int32
}

func (s *markFails) MarkNonceRefused(context.Context, string, []byte) error {
	s.calls.Add(1)
	return errors.New("store unreachable")
}

// A byte-identical copy (a replay) of a request whose first copy was
// refused is refused at once as a replay, at the node that refused it and
// at another node on the same store: a final answer, not a 503 for as
// long as copyInFlightWindow. The clock does not move between the copies.
// A copy of an issued request still gets its certificate; when the
// refusal could not be recorded, the refusal's answer is unchanged and
// its copy is told to retry, as before.
func TestReplayOfARefusedRequestIsRefusedAtOnce(t *testing.T) {
	for name, open := range testStores {
		t.Run(name, func(t *testing.T) {
			tests := []struct {
				name      string
				challenge string // the request's; "" is the right one
				markFails bool   // the store cannot record the refusal
				want      string // what a copy gets: "replay", "certificate", "retry"
			}{
				{name: "wrong challenge", challenge: "wrong", want: "replay"},
				{name: "issued", want: "certificate"},
				{name: "wrong challenge, refusal not recorded", challenge: "wrong", markFails: true, want: "retry"},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					var marks *markFails
					opts := serverOptions{db: open(t)}
					if tc.markFails {
						opts.service = func(s scepserver.Service) scepserver.Service {
							marks = &markFails{Service: s}
							return marks
						}
					}
					ts := newTestServer(t, opts)
					other := secondNode(t, ts)
					key := testKey(t, 1)
					der, msg := ts.build(t, reqParams{key: key, challenge: tc.challenge})

					resp, body := ts.post(t, der)
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("the first copy: HTTP %d %s", resp.StatusCode, body)
					}
					rep := ts.parseReply(t, body, msg)
					var issued *x509.Certificate
					if tc.want == "certificate" {
						issued, _ = ts.issuedCert(t, rep, msg.SignerCert, key)
					} else {
						// The answer is the refusal's, recorded or not.
						wantFailure(t, rep, scep.BadRequest)
					}

					for _, node := range []struct{ name, url string }{{"the same node", ts.URL}, {"another node", other}} {
						what := "a copy at " + node.name
						resp, body := postAt(t, node.url, der)
						switch tc.want {
						case "replay":
							if resp.StatusCode != http.StatusOK {
								t.Fatalf("%s: HTTP %d %s, want a FAILURE badRequest (replayed)", what, resp.StatusCode, body)
							}
							wantReplay(t, what, ts.parseReply(t, body, msg))
						case "certificate":
							if resp.StatusCode != http.StatusOK {
								t.Fatalf("%s: HTTP %d %s, want the certificate", what, resp.StatusCode, body)
							}
							wantSentAgain(t, ts, what, ts.parseReply(t, body, msg), msg.SignerCert, key, issued)
						case "retry":
							wantRetry(t, ts, what, resp, body, msg)
						}
					}
					if marks != nil && marks.calls.Load() != 1 {
						t.Errorf("MarkNonceRefused called %d times, want 1 (the first copy's refusal)", marks.calls.Load())
					}
					want := 0
					if tc.want == "certificate" {
						want = 1
					}
					if n := ts.certCount(t); n != want {
						t.Errorf("%d certificates recorded, want %d", n, want)
					}
				})
			}
		})
	}
}

// A copy that arrives while its first copy still checks its challenge is
// told to retry (503); once the first copy is refused (a wrong challenge
// at the webhook), the copy sent again is refused as a replay at once,
// without the clock moving, and the webhook is asked once in all.
func TestCopyOfARequestRefusedWhileItWaitedIsRefusedAtOnce(t *testing.T) {
	for name, open := range testStores {
		t.Run(name, func(t *testing.T) {
			ts, hook := newHeldWebhookServer(t, open(t))
			der, msg := ts.build(t, reqParams{key: testKey(t, 1), challenge: "not the secret", path: "/scep/mdm"})

			first := postInBackground(ts, "/scep/mdm", der)
			<-hook.entered // the first copy checks its challenge

			resp, body := ts.postTo(t, "/scep/mdm", der)
			close(hook.release)
			wantRetry(t, ts, "a copy while the first checks its challenge", resp, body, msg)

			a := <-first
			if a.err != nil || a.status != http.StatusOK {
				t.Fatalf("the first copy: HTTP %d, %v, %s", a.status, a.err, a.body)
			}
			wantFailure(t, ts.parseReply(t, a.body, msg), scep.BadRequest)

			resp, body = ts.postTo(t, "/scep/mdm", der)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("the copy sent again after the refusal: HTTP %d %s, want a FAILURE badRequest (replayed)", resp.StatusCode, body)
			}
			wantReplay(t, "the copy sent again after the refusal", ts.parseReply(t, body, msg))
			if n := hook.calls.Load(); n != 1 {
				t.Errorf("the webhook was asked %d times, want 1", n)
			}
		})
	}
}
