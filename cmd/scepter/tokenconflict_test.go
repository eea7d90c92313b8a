package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/store/sqlite"
)

// 'admin token new' with a name a token has, or one differing from it only
// in case, names that token as stored, with its ID and state, not the name
// asked for, which no token has (r127 D2).
func TestTokenNewNamesTheTokenInTheWay(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	ids := map[string]string{}
	for _, name := range []string{"tauditor", "old"} {
		e, _, errb := testEnv(nil)
		if err := run(ctx, e, []string{"admin", "token", "new", "--name", name, "--role", "auditor", "--data-dir", dir}); err != nil {
			t.Fatalf("admin token new %s: %v\n%s", name, err, errb)
		}
		// "token ID (NAME), role …"
		id, _, _ := strings.Cut(strings.TrimPrefix(errb.String(), "token "), " ")
		ids[name] = id
	}
	if e, _, errb := testEnv(nil); run(ctx, e, []string{"admin", "token", "revoke", "old", "--data-dir", dir}) != nil {
		t.Fatalf("admin token revoke old: %s", errb)
	}
	for _, tc := range []struct{ name, want string }{
		{"TAUDITOR", `a token is named "tauditor" already, which differs from "TAUDITOR" only in case (token ` + ids["tauditor"] + ", live;"},
		{"Old", `a token is named "old" already, which differs from "Old" only in case (token ` + ids["old"] + ", revoked at "},
	} {
		e, _, _ := testEnv(nil)
		err := run(ctx, e, []string{"admin", "token", "new", "--name", tc.name, "--role", "auditor", "--data-dir", dir})
		if err == nil || exitCode(err) != 1 || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("admin token new %s: %v; want exit 1, %q…", tc.name, err, tc.want)
		}
	}
}
