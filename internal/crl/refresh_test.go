package crl_test

import (
	"context"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/pkitest/fixture"
)

// Without revocations a CRL is replaced once every half of its validity,
// counted from its publication: its thisUpdate, backdated a minute, must
// not bring the replacement forward (with a validity of two minutes, to
// every update).
func TestRefreshedEveryHalfValidity(t *testing.T) {
	for _, validity := range []time.Duration{crl.MinValidity, 2 * time.Minute, time.Hour} {
		t.Run(validity.String(), func(t *testing.T) {
			ctx := context.Background()
			f := fixture.New(t, fixture.Options{})
			issuer := f.Issuer()
			p := crl.New(f.Store, f.Authority, f.Clock, f.Log, crl.Config{Validity: validity})
			start := f.Clock.Now()
			var published []time.Duration // since start
			var last int64
			for tick := time.Duration(0); tick <= 2*validity; tick += time.Second {
				f.Clock.Set(start.Add(tick))
				if err := p.Update(ctx); err != nil {
					t.Fatal(err)
				}
				if n := current(t, p, issuer.ID).Number.Int64(); n != last {
					last = n
					published = append(published, tick)
				}
			}
			want := []time.Duration{0, validity / 2, validity, 3 * validity / 2, 2 * validity}
			if len(published) != len(want) {
				t.Fatalf("%d CRLs published in two validities, at %v; want %d, at %v", len(published), published, len(want), want)
			}
			for i := range want {
				if published[i] != want[i] {
					t.Errorf("CRL %d published at %v, want %v", i+1, published[i], want[i])
				}
			}
		})
	}
}
