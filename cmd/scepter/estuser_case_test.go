package main

import (
	"context"
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
