package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/store/sqlite"
)

// `est user add` and `admin user add` refuse a bad argument as the rest of
// the CLI does: the reason without the internal code ("bad_request: "),
// exit 2, and each states the password rule it applies, one rule in one
// wording: at least 12 characters, at most 1024 bytes (r66 D4, r97 D5).
func TestUserAddRefusalsAreUsageErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	short, long := writePassFile(t, "short"), writePassFile(t, "a long device password")
	invisible := writePassFile(t, strings.Repeat("\u200b", 12)) // zero-width spaces (r127)
	filler := writePassFile(t, strings.Repeat("\u3164", 12))    // Hangul fillers (r128 D1)
	selectors := writePassFile(t, strings.Repeat("\ufe0f", 12)) // variation selectors (r128 D1)
	if e, _, errb := testEnv(nil); run(ctx, e, []string{"est", "user", "add", "fleet", "--password-file", long, "--data-dir", dir}) != nil {
		t.Fatalf("est user add fleet: %s", errb)
	}
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"est: short password", []string{"est", "user", "add", "short-user", "--password-file", short}, 2,
			"the password must have at least 12 characters and at most 1024 bytes (in UTF-8)"},
		{"est: bad name", []string{"est", "user", "add", "bad:name", "--password-file", long}, 2,
			`user name "bad:name": use 1 to 128 ASCII letters (a-z, A-Z), digits and . _ @ -, beginning with a letter or digit`},
		{"est: name beginning with a dot", []string{"est", "user", "add", ".fleet", "--password-file", long}, 2,
			`user name ".fleet": use 1 to 128 ASCII letters (a-z, A-Z), digits and . _ @ -, beginning with a letter or digit`},
		{"admin: user name of two dots", []string{"admin", "user", "add", "..", "--role", "auditor", "--password-file", long}, 2,
			`user name "..": use 1 to 64 ASCII letters (a-z, A-Z), digits and . _ @ -, beginning with a letter or digit`},
		{"est: unknown profile", []string{"est", "user", "add", "vpn-user", "--password-file", long, "--profile", "nosuch"}, 2,
			`unknown profile "nosuch"`},
		{"est: user exists", []string{"est", "user", "add", "fleet", "--password-file", long}, 1,
			`EST user "fleet" exists; remove it first to change its password`},
		{"est: remove nobody", []string{"est", "user", "remove", "nobody"}, 1,
			`no EST user "nobody"`},
		{"est: invisible password", []string{"est", "user", "add", "ghost", "--password-file", invisible}, 2,
			"the password has no visible character (it is all white space or invisible characters such as U+200B)"},
		{"admin: invisible password", []string{"admin", "user", "add", "ghost", "--role", "operator", "--password-file", invisible}, 2,
			"the password has no visible character (it is all white space or invisible characters such as U+200B)"},
		{"est: Hangul filler password", []string{"est", "user", "add", "ghost", "--password-file", filler}, 2,
			"the password has no visible character (it is all white space or invisible characters such as U+200B)"},
		{"admin: Hangul filler password", []string{"admin", "user", "add", "ghost", "--role", "operator", "--password-file", filler}, 2,
			"the password has no visible character (it is all white space or invisible characters such as U+200B)"},
		{"est: variation selector password", []string{"est", "user", "add", "ghost", "--password-file", selectors}, 2,
			"the password has no visible character (it is all white space or invisible characters such as U+200B)"},
		{"admin: variation selector password", []string{"admin", "user", "add", "ghost", "--role", "operator", "--password-file", selectors}, 2,
			"the password has no visible character (it is all white space or invisible characters such as U+200B)"},
		{"admin: short password", []string{"admin", "user", "add", "shorty", "--role", "operator", "--password-file", short}, 2,
			"the password must have at least 12 characters and at most 1024 bytes (in UTF-8)"},
		{"admin: bad role", []string{"admin", "user", "add", "alice", "--role", "boss", "--password-file", long}, 2,
			`role "boss": want admin, operator or auditor`},
		// r78 D4: 'admin token new' refuses a bad --name or --role as
		// 'admin user add' does (it exited 1).
		{"admin: token with a bad role", []string{"admin", "token", "new", "--name", "ci", "--role", "superuser"}, 2,
			`role "superuser": want admin, operator or auditor`},
		{"admin: token with a bad name", []string{"admin", "token", "new", "--name", "ci\tx", "--role", "operator"}, 2,
			`token name "ci\tx": use 1 to 64 ASCII letters (a-z, A-Z), digits and . _ @ -, beginning with a letter or digit`},
		{"admin: token name beginning with an at sign", []string{"admin", "token", "new", "--name", "@ci", "--role", "operator"}, 2,
			`token name "@ci": use 1 to 64 ASCII letters (a-z, A-Z), digits and . _ @ -, beginning with a letter or digit`},
		{"admin: token named like an ID", []string{"admin", "token", "new", "--name", "0123456789abcdef", "--role", "operator"}, 2,
			`token name "0123456789abcdef" looks like a token ID`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, _, _ := testEnv(nil)
			err := run(ctx, e, append(tt.args, "--data-dir", dir))
			if err == nil {
				t.Fatal("accepted")
			}
			if code := exitCode(err); code != tt.wantCode || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("exit %d, %q; want exit %d, %q", code, err, tt.wantCode, tt.wantErr)
			}
		})
	}
}
