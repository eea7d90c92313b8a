package enroll

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// A store error about a user name that may be a secret is told without
// the name, and is still the error it was (errors.Is).
func TestWithoutName(t *testing.T) {
	withheld := "a store error (its text withheld: it may hold the name sent)"
	cases := []struct {
		name, user string
		err        error
		want       string
	}{
		{"quoted, as the stores write it", "F4632C1549F8A1A3", fmt.Errorf("sqlite: EST user %q: %w", "F4632C1549F8A1A3", context.Canceled),
			"sqlite: EST user (name withheld): context canceled"},
		{"written unquoted", "F4632C1549F8A1A3", fmt.Errorf("no row for F4632C1549F8A1A3: %w", context.Canceled), withheld},
		{"a name quoting escapes", "pass\"word", fmt.Errorf("postgres: EST user %q: %w", "\uFFFE"+fmt.Sprintf("%q", "pass\"word"), context.Canceled), withheld},
		{"a name that is part of other words", "e", fmt.Errorf("sqlite: EST user %q: database closed: %w", "e", context.Canceled), withheld},
		{"no name sent", "", fmt.Errorf("sqlite: EST user %q: %w", "", context.Canceled), `sqlite: EST user "": context canceled`},
	}
	for _, c := range cases {
		got := withoutName(c.err, c.user)
		if got.Error() != c.want {
			t.Errorf("%s: %q, want %q", c.name, got.Error(), c.want)
		}
		if !errors.Is(got, context.Canceled) {
			t.Errorf("%s: %v is no longer context.Canceled", c.name, got)
		}
	}
}
