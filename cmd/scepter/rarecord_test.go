package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
)

// gatedRecordStore refuses to record issuances as a PostgreSQL store
// whose schema another node migrated past this binary's does.
type gatedRecordStore struct{ store.Store }

func (gatedRecordStore) RecordIssuance(context.Context, store.Issuance) error {
	return &pki.Error{Code: pki.EUnavailable, Message: "another node has upgraded the store's schema to version 99; upgrade this node (until then, try again later)",
		Err: fmt.Errorf("%w: %w; upgrade this node", store.ErrUnavailable, &migrate.TooNewError{Have: 99, Known: 98})}
}

// On a node whose issuance is gated, the RA certificates it has not
// recorded cannot be recorded: the CA reload's recorder says so once per
// RA, not at every reload. Other failures are said each time.
func TestGatedRARecordIsLoggedOncePerRA(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	gated, err := enroll.New(gatedRecordStore{p.Store}, p.Authority, p.Clock, nil, enroll.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var failure error // set: the record fails so, ungated
	r := newRARecorder(func(ctx context.Context) error {
		if failure != nil {
			return failure
		}
		return gated.RecordRACertificates(ctx)
	}, log)
	warnings := func() int { return strings.Count(logs.String(), "level=WARN") }

	steps := []struct {
		name string
		do   func(t *testing.T)
		want int // WARN lines so far
	}{
		{"first reload", func(*testing.T) {}, 1},
		{"second reload", func(*testing.T) {}, 1},
		{"third reload", func(*testing.T) {}, 1},
		{"an RA renewed", func(t *testing.T) {
			p.Clock.Set(p.Authority.RA.Cert.NotAfter.Add(-20 * raTestDay))
			if _, _, err := ca.RenewRA(p.Dir, ca.RenewRAOptions{GenerateKey: testKeys.Generate}, p.Clock); err != nil {
				t.Fatal(err)
			}
			if err := p.Authority.Reload(p.Clock.Now()); err != nil {
				t.Fatal(err)
			}
		}, 2},
		{"a reload after", func(*testing.T) {}, 2},
		{"a store error", func(*testing.T) { failure = errors.New("the store is away") }, 3},
		{"the same store error", func(*testing.T) {}, 4},
	}
	for _, s := range steps {
		s.do(t)
		r.run(ctx)
		if got := warnings(); got != s.want {
			t.Fatalf("%s: %d warnings, want %d:\n%s", s.name, got, s.want, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "newer than this scepter") {
		t.Errorf("the gated refusal does not say why:\n%s", logs.String())
	}
}
