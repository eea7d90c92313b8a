package scepserver_test

import (
	"context"
	"crypto/sha256"
	"net/http"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/scep/scepserver"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// A PKCSReq in flight on a node that died (SIGKILL) is sent again byte for
// byte to another node, as a load balancer retrying the POST does: its
// (transactionID, senderNonce) was seen, so it is a replay, but it is
// answered as its resend is, never with a final FAILURE for what the
// device did not do wrong. The dead node had issued and recorded the
// certificate: SUCCESS with it. It had only claimed the transaction: 503
// with Retry-After while the claim lives, and, once the claim lapsed, the
// request runs (one certificate). Neither: refused as a replay.
func TestReplayOfARequestInFlightOnANodeThatDied(t *testing.T) {
	stores := map[string]func(t *testing.T) store.Store{
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
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			for _, tc := range []struct {
				name string
				// deadNode is what the node that died left in the store.
				deadNode string // "issued", "claimed" or "seen"
			}{
				{"issued and recorded", "issued"},
				{"claimed, nothing issued", "claimed"},
				{"seen only", "seen"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					ts := newTestServer(t, serverOptions{db: open(t)})
					nonceLifetime := 2 * scepserver.DefaultMaxClockSkew // the handler's
					ctx := context.Background()
					key := testKey(t, 1)
					der, msg := ts.build(t, reqParams{key: key})
					signer := sha256.Sum256(msg.SignerCert.RawSubjectPublicKeyInfo)
					pair := append(append([]byte(nil), msg.SenderNonce...), signer[:]...)
					profile, _ := ts.Service.Profile("")
					hash, err := store.PublicKeyHash(key.Public())
					if err != nil {
						t.Fatal(err)
					}
					claim := store.TransactionClaim{KeyHash: hash, Profile: profile.Name, TransactionID: msg.TransactionID,
						Claimant: []byte("the node that died"), At: ts.Clock.Now().Add(-time.Minute), Expires: ts.Clock.Now().Add(4 * time.Minute)}

					var issued *scep.PKIMessage
					switch tc.deadNode {
					case "issued":
						// Its answer never reached the device.
						_, body := ts.post(t, der)
						issued = ts.parseReply(t, body, msg)
					case "claimed":
						if err := ts.Service.RememberNonce(ctx, msg.TransactionID, pair, nonceLifetime); err != nil {
							t.Fatal(err)
						}
						if _, err := ts.Store.ReserveSerialClaiming(ctx, claim, ts.Authority.Issuer.ID, "0dead", []byte("tbs")); err != nil {
							t.Fatal(err)
						}
					case "seen":
						if err := ts.Service.RememberNonce(ctx, msg.TransactionID, pair, nonceLifetime); err != nil {
							t.Fatal(err)
						}
						// Long ago: a copy sent moments after is told to
						// retry (TestReplayOfARequestOfWhichNothingIsFound).
						ts.Clock.Advance(copyInFlightWindow)
					}

					resp, body := ts.post(t, der)
					switch tc.deadNode {
					case "issued":
						first, _ := ts.issuedCert(t, issued, msg.SignerCert, key)
						wantSentAgain(t, ts, "the same bytes at another node", ts.parseReply(t, body, msg), msg.SignerCert, key, first)
					case "claimed":
						if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
							t.Fatalf("the same bytes while the dead node's claim lives: HTTP %d, Retry-After %q, %s; want 503 with Retry-After",
								resp.StatusCode, resp.Header.Get("Retry-After"), body)
						}
						if n := ts.certCount(t); n != 0 {
							t.Fatalf("%d certificates recorded while the claim lives, want 0", n)
						}
						ts.Clock.Advance(5 * time.Minute) // the claim lapses
						_, body = ts.post(t, der)
						ts.issuedCert(t, ts.parseReply(t, body, msg), msg.SignerCert, key)
					case "seen":
						wantReplay(t, "the same bytes, nothing done for them", ts.parseReply(t, body, msg))
					}
					want := map[string]int{"issued": 1, "claimed": 1, "seen": 0}[tc.deadNode]
					if n := ts.certCount(t); n != want {
						t.Errorf("%d certificates recorded, want %d", n, want)
					}
				})
			}
		})
	}
}
