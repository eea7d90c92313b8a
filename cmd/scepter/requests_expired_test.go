package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// "requests list" leaves out a held request whose retention ran out with
// no decision (it can no longer be approved) and shows it as expired under
// --status expired and all.
func TestRequestsListShowsExpired(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	// The command reads the system clock: the requests are made around it.
	now := pki.SystemClock{}.Now()
	for _, r := range []pki.EnrollmentRequest{
		{ID: "r-lapsed", TransactionID: "tx-lapsed", CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)},
		{ID: "r-waiting", TransactionID: "tx-waiting", CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
	} {
		r.Profile, r.Protocol, r.Status, r.Subject, r.CSR = "default", pki.ProtocolSCEP, pki.RequestPending, "CN="+r.ID, []byte{0x30}
		if err := st.CreateRequest(ctx, r, nil, pki.AuditEvent{Type: pki.EventRequestPending, Time: r.CreatedAt}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	for _, tc := range []struct {
		status string
		want   map[string]string
	}{
		{"", map[string]string{"r-waiting": "pending"}},
		{"expired", map[string]string{"r-lapsed": "expired"}},
		{"all", map[string]string{"r-waiting": "pending", "r-lapsed": "expired"}},
	} {
		args := []string{"requests", "list", "--json", "--data-dir", dir}
		if tc.status != "" {
			args = append(args, "--status", tc.status)
		}
		e, out, errb := testEnv(nil)
		if err := run(ctx, e, args); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, errb)
		}
		var list []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		if err := json.Unmarshal(out.Bytes(), &list); err != nil {
			t.Fatalf("%s: %v", strings.Join(args, " "), err)
		}
		got := map[string]string{}
		for _, r := range list {
			got[r.ID] = r.Status
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: %v, want %v", strings.Join(args, " "), got, tc.want)
			continue
		}
		for id, s := range tc.want {
			if got[id] != s {
				t.Errorf("%s: %v, want %v", strings.Join(args, " "), got, tc.want)
			}
		}
	}
	// The table says so too.
	e, out, errb := testEnv(nil)
	if err := run(ctx, e, []string{"requests", "list", "--status", "expired", "--data-dir", dir}); err != nil {
		t.Fatalf("requests list --status expired: %v\n%s", err, errb)
	}
	if !strings.Contains(out.String(), "r-lapsed  expired") {
		t.Errorf("requests list --status expired:\n%s", out)
	}
}
