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

// A list's cursor is "TAG.INNER": INNER where the next page starts (the
// store's cursor, or the last ID seen), TAG a short hash of the list and
// filter it was given for. A cursor sent with another filter is so refused,
// not read as a starting point in a list it does not belong to. The hash
// is plain, not keyed: a cursor holds no secret, and a forged one only
// starts a list the caller could have asked for anyway.

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

func badCursor() error {
	return pki.Errorf(pki.EBadRequest, "the cursor is not one this list gave, or belongs to another filter")
}

// goneCursor answers a cursor of this list whose last item seen (a
// request or challenge) is gone since, deleted or purged.
func goneCursor(what string) error {
	return pki.Errorf(pki.EBadRequest, "the %s this page continued from is gone (deleted or purged): start again from the first page", what)
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

// nextAfter is the cursor of a list the store pages by the last ID seen.
func nextAfter(filter []string, lastID string) string {
	return bindCursor(filter, base64.RawURLEncoding.EncodeToString([]byte(lastID)))
}

// onePage is the page of a list read with a limit of limit+1 after the
// cursor's last ID (what for its items, "request"): at most limit of
// them, and the next page's cursor, "" at the end. A read that failed
// passes its error, one refused for its cursor (its last item gone since)
// as goneCursor.
func onePage[T any](filter []string, limit int, list []T, err error, what string, id func(T) string) ([]T, string, error) {
	if errors.Is(err, store.ErrBadCursor) {
		return nil, "", goneCursor(what)
	}
	if err != nil || len(list) <= limit {
		return list, "", err
	}
	list = list[:limit]
	return list, nextAfter(filter, id(list[limit-1])), nil
}

// afterID is the last ID seen of a cursor nextAfter gave ("" for the
// first page).
func afterID(filter []string, cursor string) (string, error) {
	inner, err := unbindCursor(filter, cursor)
	if err != nil || inner == "" {
		return "", err
	}
	id, err := base64.RawURLEncoding.DecodeString(inner)
	if err != nil || len(id) == 0 {
		return "", badCursor()
	}
	return string(id), nil
}
