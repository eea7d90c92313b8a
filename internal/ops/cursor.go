package ops

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// A list's cursor is "TAG.INNER": INNER the store's cursor, the position
// in the list's order where the next page starts (not the last item's ID,
// so that the next page follows when that item is deleted or purged in
// between), TAG a short hash of the list and filter it was given for. A
// cursor sent with another filter is so refused, not read as a starting
// point in a list it does not belong to. The hash is plain, not keyed: a
// cursor holds no secret, and a forged one only starts a list the caller
// could have asked for anyway.

// bindCursor ties inner to the filter; "" (no next page) stays "".
func bindCursor(filter []string, inner string) string {
	if inner == "" {
		return ""
	}
	return filterTag(filter) + "." + inner
}

// unbindCursor is the inner cursor of one bindCursor gave for this filter
// ("" for the first page), or EBadRequest.
func unbindCursor(filter []string, cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	tag, inner, ok := strings.Cut(cursor, ".")
	if !ok || inner == "" || tag != filterTag(filter) {
		return "", badCursor()
	}
	return inner, nil
}

// badCursor refuses a cursor this list did not give: malformed, of
// another list or filter, or of the form held requests and challenges
// were paged with before an upgrade (their last item's ID), which no
// store reads any more.
func badCursor() error {
	return pki.Errorf(pki.EBadRequest, "the cursor is not one this list gave, or belongs to another filter: start again from the first page")
}

// storeCursorError is err of a store's listing, as badCursor when the
// store refused the cursor.
func storeCursorError(err error) error {
	if errors.Is(err, store.ErrBadCursor) {
		return badCursor()
	}
	return err
}

// filterTag hashes the filter's fields, each length-prefixed so that no
// two filters share an encoding.
func filterTag(filter []string) string {
	h := sha256.New()
	for _, f := range filter {
		h.Write([]byte(strconv.Itoa(len(f)) + ":" + f + ";"))
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:9])
}

// filterTime is a time filter's field ("" for none).
func filterTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMicro(), 10)
}
