package postgres

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/scepter/scepter/internal/store"
)

// errBadCursor is wrapped by ListCertificates when a cursor did not come
// from a previous page (or came from a page in the other order).
var errBadCursor = store.ErrBadCursor

type cursorKind int

const (
	cursorNone   cursorKind = iota // first page
	cursorNewest                   // id DESC order: last id seen
	cursorExpiry                   // (not_after, id) order: last pair seen
	cursorIssued                   // (created_at, id) DESC order: last pair seen
)

// cursor is the sort key of the last row of a page. On the wire it is
// base64url (no padding) of "n:<id>" or "e:<not_after unix µs>:<id>": it
// carries no filter, so callers must send the same filter with it, and no
// secret, so it need not be signed (a forged cursor only selects another
// starting point the caller could have asked for anyway).
type cursor struct {
	kind     cursorKind
	notAfter int64 // or created_at, for cursorIssued
	id       int64
}

func (c cursor) String() string {
	var s string
	switch c.kind {
	case cursorNewest:
		s = "n:" + strconv.FormatInt(c.id, 10)
	case cursorExpiry:
		s = "e:" + strconv.FormatInt(c.notAfter, 10) + ":" + strconv.FormatInt(c.id, 10)
	case cursorIssued:
		s = "i:" + strconv.FormatInt(c.notAfter, 10) + ":" + strconv.FormatInt(c.id, 10)
	default:
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func parseCursor(s string) (cursor, error) {
	if s == "" {
		return cursor{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, fmt.Errorf("%w: %v", errBadCursor, err)
	}
	parts := strings.Split(string(b), ":")
	bad := fmt.Errorf("%w: %q", errBadCursor, s)
	switch {
	case len(parts) == 2 && parts[0] == "n":
		id, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil {
			return cursor{}, bad
		}
		return cursor{kind: cursorNewest, id: id}, nil
	case len(parts) == 3 && (parts[0] == "e" || parts[0] == "i"):
		na, err1 := strconv.ParseInt(parts[1], 10, 64)
		id, err2 := strconv.ParseInt(parts[2], 10, 64)
		if err1 != nil || err2 != nil {
			return cursor{}, bad
		}
		kind := cursorExpiry
		if parts[0] == "i" {
			kind = cursorIssued
		}
		return cursor{kind: kind, notAfter: na, id: id}, nil
	}
	return cursor{}, bad
}
