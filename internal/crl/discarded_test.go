package crl_test

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
)

// goneKey is a token key destroyed while the token stays open, failing as
// the keys package then fails it; it counts its uses.
type goneKey struct {
	crypto.Signer
	uses *atomic.Int64
}

func (k goneKey) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	k.uses.Add(1)
	return nil, fmt.Errorf("keys: the PKCS#11 token, opened again, holds no key labelled %q with the public key it had: %w: %w",
		"scepter-issuing-d5d055fd", pki.ErrUnavailable, keys.ErrKeyNotFound)
}

// issuerList is a fixed list of issuers.
type issuerList []*ca.Issuer

func (l issuerList) Issuers() []*ca.Issuer { return l }

// After `scepter ca rollover --discard` on another node destroyed the next
// CA's keys in the shared token, this node still lists that CA until its
// next CA reload. Its CRL is tried once, not at every update: the store
// records the generation as discarded, so one INFO line says so and no
// error is returned (Run would log it every second). An issuer whose key
// is gone but which is not discarded still fails every update.
func TestDiscardedIssuerWithoutKeyIsLeftAside(t *testing.T) {
	ctx := context.Background()
	for _, discarded := range []bool{true, false} {
		t.Run(fmt.Sprintf("discarded=%v", discarded), func(t *testing.T) {
			f := fixture.New(t, fixture.Options{})
			other := fixture.New(t, fixture.Options{}).Issuer() // another generation's certificate
			var uses atomic.Int64
			gone := &ca.Issuer{Cert: other.Cert, ID: other.ID, Chain: other.Chain, Signer: goneKey{Signer: other.Signer, uses: &uses}}
			if discarded {
				ev := pki.AuditEvent{Time: f.Clock.Now(), Type: pki.EventCARollover, Actor: "cli:node-a", IssuerID: gone.ID, Outcome: "success"}
				if err := f.Store.DiscardCAGeneration(ctx, gone.ID, f.Clock.Now(), ev); err != nil {
					t.Fatal(err)
				}
			}
			logs := &logBuffer{}
			p := crl.New(f.Store, issuerList{f.Issuer(), gone}, f.Clock, slog.New(slog.NewTextHandler(logs, nil)), crl.Config{})
			for i := 0; i < 5; i++ {
				err := p.Update(ctx)
				if discarded && err != nil {
					t.Fatalf("update %d: %v, want none for a discarded issuer", i, err)
				}
				if !discarded && err == nil {
					t.Fatalf("update %d: no error for an issuer whose key is gone and that is not discarded", i)
				}
				f.Clock.Advance(time.Second)
			}
			if _, ok := p.Current(f.Issuer().ID); !ok {
				t.Error("the current issuer has no CRL")
			}
			want := map[bool]int64{true: 1, false: 5}[discarded]
			if got := uses.Load(); got != want {
				t.Errorf("the gone key was used %d times in 5 updates, want %d", got, want)
			}
			if got := logs.count("discarded issuing CA"); got != map[bool]int{true: 1, false: 0}[discarded] {
				t.Errorf("%d lines say the issuer is discarded:\n%s", got, logs.b.String())
			}
		})
	}
}
