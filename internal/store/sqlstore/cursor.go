package sqlstore

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// CursorKind is the order a cursor continues.
type CursorKind int

const (
	CursorNone   CursorKind = iota // first page
	CursorNewest                   // id DESC order: last id seen
	CursorExpiry                   // (not_after, id) order: last pair seen
	CursorIssued                   // (created_at, id) DESC order: last pair seen
	// Held requests, seq DESC: the last seq seen.
	CursorRequest
	// Challenges, (created_at, seq) DESC (SQLite: rowid for seq): the last
	// pair seen.
	CursorChallenge
)

// Cursor is the sort key of the last row of a page. On the wire it is
// base64url (no padding) of "n:<id>", "e:<not_after µs>:<id>" or
// "i:<created_at µs>:<id>" (certificates), "r:<seq>" (held requests) or
// "c:<created_at µs>:<seq>" (challenges). Being the position itself, not
// the row's ID, it stays a starting point after that row is deleted or
// purged. It carries no filter, so callers must send the
// same filter with it, and no secret, so it need not be signed (a forged
// cursor only selects another starting point the caller could have asked
// for anyway).
type Cursor struct {
	Kind CursorKind
	Time int64 // not_after (CursorExpiry) or created_at (CursorIssued, CursorChallenge), µs
	ID   int64 // the row's id, or seq (CursorRequest, CursorChallenge)
}

// cursorPrefix is each kind's tag on the wire.
var cursorPrefix = map[CursorKind]string{
	CursorNewest: "n", CursorExpiry: "e", CursorIssued: "i", CursorRequest: "r", CursorChallenge: "c",
}

func (c Cursor) String() string {
	var s string
	switch c.Kind {
	case CursorNewest, CursorRequest:
		s = cursorPrefix[c.Kind] + ":" + strconv.FormatInt(c.ID, 10)
	case CursorExpiry, CursorIssued, CursorChallenge:
		s = cursorPrefix[c.Kind] + ":" + strconv.FormatInt(c.Time, 10) + ":" + strconv.FormatInt(c.ID, 10)
	default:
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// ParseCursor reads a certificate listing's cursor String gave; "" is the
// first page. Anything else wraps store.ErrBadCursor.
func ParseCursor(s string) (Cursor, error) {
	c, err := parseCursor(s)
	if err != nil {
		return Cursor{}, err
	}
	if c.Kind == CursorRequest || c.Kind == CursorChallenge {
		return Cursor{}, fmt.Errorf("%w: a cursor of another list", store.ErrBadCursor)
	}
	return c, nil
}

// ParseListCursor reads a cursor of kind (CursorRequest or
// CursorChallenge) String gave; "" is the first page (CursorNone).
// Anything else, a cursor of another kind included, wraps
// store.ErrBadCursor.
func ParseListCursor(s string, kind CursorKind) (Cursor, error) {
	c, err := parseCursor(s)
	if err != nil {
		return Cursor{}, err
	}
	if c.Kind != CursorNone && c.Kind != kind {
		return Cursor{}, fmt.Errorf("%w: a cursor of another list", store.ErrBadCursor)
	}
	return c, nil
}

// parseCursor reads a cursor of any kind.
func parseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, fmt.Errorf("%w: %v", store.ErrBadCursor, err)
	}
	parts := strings.Split(string(b), ":")
	bad := fmt.Errorf("%w: %q", store.ErrBadCursor, s)
	for kind, prefix := range cursorPrefix {
		if parts[0] != prefix {
			continue
		}
		c := Cursor{Kind: kind}
		switch {
		case len(parts) == 2 && (kind == CursorNewest || kind == CursorRequest):
			c.ID, err = strconv.ParseInt(parts[1], 10, 64)
		case len(parts) == 3 && kind != CursorNewest && kind != CursorRequest:
			var err2 error
			c.Time, err = strconv.ParseInt(parts[1], 10, 64)
			c.ID, err2 = strconv.ParseInt(parts[2], 10, 64)
			err = errors.Join(err, err2)
		default:
			return Cursor{}, bad
		}
		if err != nil {
			return Cursor{}, bad
		}
		return c, nil
	}
	return Cursor{}, bad
}

// ListPage cuts rows, read with one row more than limit, to the page, and
// returns the cursor after its last row: "" when the extra row was not
// there. pos holds each row's position in the list's order.
func ListPage[T any](rows []T, pos []Cursor, limit int) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	return rows[:limit], pos[limit-1].String()
}

// NextPage cuts rows, read with one row more than limit, to the page, and
// returns the cursor after its last row in order: "" when the extra row
// was not there, so the last page ends with "" rather than an empty page.
// ids are the rows' certificate ids, cert their certificates.
func NextPage[T any](rows []T, ids []int64, limit int, order CursorKind, cert func(T) pki.Certificate) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows, last := rows[:limit], limit-1
	next := Cursor{Kind: order, ID: ids[last]}
	switch order {
	case CursorExpiry:
		next.Time = Micros(cert(rows[last]).NotAfter)
	case CursorIssued:
		next.Time = Micros(cert(rows[last]).CreatedAt)
	}
	return rows, next.String()
}
