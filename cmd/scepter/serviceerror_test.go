package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/postgres"
)

// A command shows a store out of reach with its cause: `certs revoke` on
// a full disk printed only "temporarily unavailable, try again later",
// while the cause was in the error. A PostgreSQL URL's password stays
// out of it; refusals keep their client-safe message and internal errors
// are shown as they are.
func TestServiceErrorKeepsTheStoreCause(t *testing.T) {
	// A PostgreSQL server that is not there: a port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, pgErr := postgres.Open(ctx, "postgres://ca:s3cret@"+addr+"/ca?connect_timeout=1")
	if pki.ErrorCode(pgErr) != pki.EUnavailable {
		t.Fatalf("postgres.Open of a closed port: %v, want an unavailable store", pgErr)
	}

	full := fmt.Errorf("admin: revoke: %w", fmt.Errorf("%w: %w", store.ErrUnavailable, errors.New("sqlite: database or disk is full (13)")))
	tests := []struct {
		name    string
		err     error
		want    []string
		notWant []string
	}{
		{"full disk", full, []string{"temporarily unavailable (sqlite: database or disk is full (13)), try again later"}, nil},
		{"postgres down", pgErr, []string{"temporarily unavailable (", addr, "), try again later"}, []string{"s3cret"}},
		{"refusal", pki.Errorf(pki.ENotFound, "no certificate with serial 01"), []string{"no certificate with serial 01"}, []string{"not_found"}},
		{"unavailable with a message", pki.Errorf(pki.EUnavailable, "the issuing CA is not valid yet"), []string{"the issuing CA is not valid yet"}, nil},
		{"internal", errors.New("stored certificate 01: bad DER"), []string{"stored certificate 01: bad DER"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := serviceError(tt.err)
			msg := got.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not say %q", msg, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(msg, w) {
					t.Errorf("%q says %q", msg, w)
				}
			}
			if !errors.Is(got, tt.err) || exitCode(got) != 1 {
				t.Errorf("serviceError(%v) = %v: want it wrapping the error, exit 1", tt.err, got)
			}
		})
	}
}
