package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// `certs list` names the newest renewal of each certificate a renewal
// replaced (RENEWED BY, in whole bytes; --json's renewed_by), and
// --renewed false leaves those out, with --expiring-within too, so that
// the list is of the certificates still to renew; --renewed true keeps
// them alone, and any other value is a usage error naming the flag.
func TestCertsListRenewed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	// The CLI reads the real clock: the certificates are dated from it.
	now := time.Now().UTC().Truncate(time.Second)
	issuer := strings.Repeat("1", 64)
	// a01 is renewed by b01; a02 by b02, then by b03; a03 by none. The
	// serials have an odd number of digits: shown 0a01, 0b03, ….
	for _, c := range []struct {
		serial, renews string
		notAfter       time.Duration
	}{
		{"a01", "", 10 * 24 * time.Hour},
		{"a02", "", 12 * 24 * time.Hour},
		{"a03", "", 14 * 24 * time.Hour},
		{"b01", "a01", 300 * 24 * time.Hour},
		{"b02", "a02", 301 * 24 * time.Hour},
		{"b03", "a02", 302 * 24 * time.Hour},
		{"c0ffe", "", 400 * 24 * time.Hour},
	} {
		cert := pki.Certificate{
			SerialHex: c.serial, IssuerID: issuer, Issuer: "CN=Test CA", Subject: "CN=device-" + c.serial,
			NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(c.notAfter), Status: pki.StatusValid,
			Profile: "default", Protocol: pki.ProtocolCLI, Source: pki.SourceIssued, KeyType: "p256",
			CreatedAt: now.Add(-48 * time.Hour), DER: []byte{0x30, 0x03, 'd', 'e', 'r'},
		}
		if c.renews != "" {
			cert.RenewedFrom = issuer + ":" + c.renews
		}
		if err := st.RecordIssuance(ctx, store.Issuance{Now: now.Add(-48 * time.Hour), Certificate: cert}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	renewedBy := map[string]string{"a01": issuer + ":b01", "a02": issuer + ":b03"}

	for _, tt := range []struct {
		args    []string
		want    []string // serials listed, sorted; nil with wantErr
		wantErr string
	}{
		{nil, []string{"a01", "a02", "a03", "b01", "b02", "b03", "c0ffe"}, ""},
		{[]string{"--expiring-within", "30d"}, []string{"a01", "a02", "a03"}, ""},
		{[]string{"--expiring-within", "30d", "--renewed", "false"}, []string{"a03"}, ""},
		{[]string{"--expiring-within", "30d", "--renewed=true"}, []string{"a01", "a02"}, ""},
		{[]string{"--renewed", "false"}, []string{"a03", "b01", "b02", "b03", "c0ffe"}, ""},
		{[]string{"--renewed", "true", "--status", "valid", "--profile", "default"}, []string{"a01", "a02"}, ""},
		{[]string{"--renewed", "false", "--status", "revoked"}, []string{}, ""},
		{[]string{"--renewed", "yes"}, nil, `--renewed "yes": want false`},
		{[]string{"--renewed", "False"}, nil, `--renewed "False": want false`},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			e, out, errb := testEnv(nil)
			err := run(ctx, e, append([]string{"certs", "list", "--json", "--data-dir", dir}, tt.args...))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != 2 {
					t.Fatalf("err = %v (exit %d), want a usage error saying %q\nstdout: %s", err, exitCode(err), tt.wantErr, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\nstderr: %s", err, errb)
			}
			var listed []certJSON
			if err := json.Unmarshal(out.Bytes(), &listed); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			got := []string{}
			for _, c := range listed {
				got = append(got, c.Serial)
				if c.RenewedBy != renewedBy[c.Serial] {
					t.Errorf("%s: renewed_by %q, want %q", c.Serial, c.RenewedBy, renewedBy[c.Serial])
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("listed %q, want %q", got, tt.want)
			}
		})
	}

	// The table's RENEWED BY column: the newest renewal's serial in whole
	// bytes, "-" for none.
	e, out, errb := testEnv(nil)
	if err := run(ctx, e, []string{"certs", "list", "--data-dir", dir, "--expiring-within", "30d"}); err != nil {
		t.Fatalf("%v\nstderr: %s", err, errb)
	}
	for _, want := range []string{
		`(?m)^SERIAL +STATUS +NOT AFTER +PROFILE +RENEWED BY +SUBJECT$`,
		`(?m)^0a01 +valid +\S+ +default +0b01 +CN=device-a01$`,
		`(?m)^0a02 +valid +\S+ +default +0b03 +CN=device-a02$`,
		`(?m)^0a03 +valid +\S+ +default +- +CN=device-a03$`,
	} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("the table does not match %s:\n%s", want, out)
		}
	}
}
