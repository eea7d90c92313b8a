package sqlstore

import (
	"encoding/base64"
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
)

// Cursor is the sort key of the last row of a page. On the wire it is
// base64url (no padding) of "n:<id>", "e:<not_after µs>:<id>" or
// "i:<created_at µs>:<id>": it carries no filter, so callers must send the
// same filter with it, and no secret, so it need not be signed (a forged
// cursor only selects another starting point the caller could have asked
// for anyway).
type Cursor struct {
	Kind CursorKind
	Time int64 // not_after (CursorExpiry) or created_at (CursorIssued), µs
	ID   int64
}

func (c Cursor) String() string {
	var s string
	switch c.Kind {
	case CursorNewest:
		s = "n:" + strconv.FormatInt(c.ID, 10)
	case CursorExpiry:
		s = "e:" + strconv.FormatInt(c.Time, 10) + ":" + strconv.FormatInt(c.ID, 10)
	case CursorIssued:
		s = "i:" + strconv.FormatInt(c.Time, 10) + ":" + strconv.FormatInt(c.ID, 10)
	default:
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// ParseCursor reads a cursor String gave; "" is the first page. Anything
// else wraps store.ErrBadCursor.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, fmt.Errorf("%w: %v", store.ErrBadCursor, err)
	}
	parts := strings.Split(string(b), ":")
	bad := fmt.Errorf("%w: %q", store.ErrBadCursor, s)
	switch {
	case len(parts) == 2 && parts[0] == "n":
		id, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil {
			return Cursor{}, bad
		}
		return Cursor{Kind: CursorNewest, ID: id}, nil
	case len(parts) == 3 && (parts[0] == "e" || parts[0] == "i"):
		t, err1 := strconv.ParseInt(parts[1], 10, 64)
		id, err2 := strconv.ParseInt(parts[2], 10, 64)
		if err1 != nil || err2 != nil {
			return Cursor{}, bad
		}
		kind := CursorExpiry
		if parts[0] == "i" {
			kind = CursorIssued
		}
		return Cursor{Kind: kind, Time: t, ID: id}, nil
	}
	return Cursor{}, bad
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
