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

// FuzzParseListCursor: as FuzzParseCursor, for the held requests' and the
// challenges' cursors; each kind refuses the other's and a certificate's.
func FuzzParseListCursor(f *testing.F) {
	for _, c := range []Cursor{{Kind: CursorRequest, ID: 42}, {Kind: CursorChallenge, Time: 1700000000000000, ID: 7}, {Kind: CursorNewest, ID: 3}} {
		f.Add(c.String())
	}
	f.Add("")
	f.Add("cjo")
	f.Fuzz(func(t *testing.T, s string) {
		for _, kind := range []CursorKind{CursorRequest, CursorChallenge} {
			c, err := ParseListCursor(s, kind)
			if err != nil {
				if !errors.Is(err, store.ErrBadCursor) {
					t.Fatalf("ParseListCursor(%q, %d): %v, not ErrBadCursor", s, kind, err)
				}
				continue
			}
			if c.Kind != kind && c.Kind != CursorNone {
				t.Fatalf("ParseListCursor(%q, %d) = %+v, of another kind", s, kind, c)
			}
			again, err := ParseListCursor(c.String(), kind)
			if err != nil || again != c {
				t.Fatalf("ParseListCursor(%q, %d) = %+v, which prints as %q and reads back as %+v, %v", s, kind, c, c.String(), again, err)
			}
			if _, err := ParseCursor(s); s != "" && err == nil {
				t.Fatalf("ParseCursor(%q): a %d cursor read as a certificate listing's", s, kind)
			}
		}
	})
}
