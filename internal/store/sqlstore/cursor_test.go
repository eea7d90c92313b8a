package sqlstore

import (
	"errors"
	"testing"

	"github.com/scepter/scepter/internal/store"
)

// FuzzParseCursor: a cursor comes from an API client. Parsing never
// panics; what parses prints back to the same cursor, and what does not is
// store.ErrBadCursor (a 400, never a 500).
func FuzzParseCursor(f *testing.F) {
	for _, c := range []Cursor{{Kind: CursorNewest, ID: 42}, {Kind: CursorExpiry, Time: 1700000000000000, ID: 7}, {Kind: CursorIssued, Time: -1, ID: 0}} {
		f.Add(c.String())
	}
	f.Add("")
	f.Add("%%%")
	f.Add("bjo")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			if !errors.Is(err, store.ErrBadCursor) {
				t.Fatalf("ParseCursor(%q): %v, not ErrBadCursor", s, err)
			}
			return
		}
		again, err := ParseCursor(c.String())
		if err != nil || again != c {
			t.Fatalf("ParseCursor(%q) = %+v, which prints as %q and reads back as %+v, %v", s, c, c.String(), again, err)
		}
	})
}
