package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/store/sqlite"
)

// Names of EST users are unique regardless of case: "est user add FLEET"
// beside fleet names fleet, and "est user remove FLEET" removes it.
func TestESTUserRemoveInAnyCase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	cli := func(args ...string) (string, error) {
		e, out, errb := testEnv(map[string]string{"SCEPTER_EST_PASSWORD": "a long device password"})
		err := run(ctx, e, append(args, "--data-dir", dir))
		return out.String() + errb.String(), err
	}
	if out, err := cli("est", "user", "add", "fleet"); err != nil {
		t.Fatalf("est user add fleet: %v\n%s", err, out)
	}
	out, err := cli("est", "user", "add", "FLEET")
	if err == nil || !strings.Contains(out+err.Error(), `EST user "fleet" exists`) {
		t.Errorf("est user add FLEET: %v\n%s; want a refusal naming fleet", err, out)
	}
	if out, err := cli("est", "user", "remove", "FLEET"); err != nil || !strings.Contains(out, "EST user fleet removed") {
		t.Fatalf("est user remove FLEET: %v\n%s; want fleet, as stored, removed", err, out)
	}
	st, err = sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if users, err := st.ListESTUsers(ctx); err != nil || len(users) != 0 {
		t.Errorf("EST users left: %v (%v)", users, err)
	}
}

// `est user add` without --profile names the profiles where the user
// enrolls (those whose challenge is static or any), and warns when there
// is none: every profile of examples/scepter.toml takes one-time or
// webhook challenges, where an unbound user is refused (r46).
func TestESTUserAddSaysWhereItEnrolls(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, config, wantOut, wantErr string
	}{
		// Without --config the server's profiles are unknown: the built-in
		// default is not said to be the only one (r75 D8).
		{"no --config", "", "EST user fleet added (it enrolls at the server's profiles whose challenge is static or any; pass --config to list them)", ""},
		{"--config", "[profiles.default]\nchallenge = \"any\"\n[profiles.kg]\nchallenge = \"static\"\n[profiles.ot]\nchallenge = \"onetime\"\n",
			"EST user fleet added (profiles whose challenge is static or any: default, kg)", ""},
		{"every profile one-time", "[profiles.default]\nchallenge = \"onetime\"\n[profiles.vpn]\nchallenge = \"webhook\"\n",
			"EST user fleet added", "enrolls nowhere until it is bound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
			if err != nil {
				t.Fatal(err)
			}
			st.Close()
			args := []string{"est", "user", "add", "fleet", "--data-dir", dir}
			if tc.config != "" {
				cfg := filepath.Join(t.TempDir(), "scepter.toml")
				if err := os.WriteFile(cfg, []byte(tc.config), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", cfg)
			}
			e, out, errb := testEnv(map[string]string{"SCEPTER_EST_PASSWORD": "a long device password"})
			if err := run(ctx, e, args); err != nil {
				t.Fatalf("est user add: %v\n%s%s", err, out, errb)
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("stdout %q, want %q", out.String(), tc.wantOut)
			}
			if got := errb.String(); tc.wantErr == "" && strings.Contains(got, "warning") || tc.wantErr != "" && !strings.Contains(got, tc.wantErr) {
				t.Errorf("stderr %q, want %q", got, tc.wantErr)
			}
		})
	}
}
