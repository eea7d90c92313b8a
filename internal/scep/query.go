package scep

import (
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
)

// The HTTP encoding of SCEP operations (RFC 8894 §4.1), as devices really
// send them.

// Operation reads the operation parameter of a raw query without
// url.ParseQuery's strictness, so an unescaped message parameter cannot
// hide it.
func Operation(rawQuery string) string {
	v, _ := queryValue(rawQuery, "operation")
	return v
}

// queryValue finds key in a raw query. Devices send the base64 message
// URL-escaped, unescaped (raw '+' and '/'), or with spaces for '+'; all are
// accepted. A literal '+' is kept as '+', never turned into a space.
func queryValue(rawQuery, key string) (string, bool) {
	for _, part := range strings.Split(rawQuery, "&") {
		k, v, _ := strings.Cut(part, "=")
		if k != key {
			continue
		}
		un, err := url.PathUnescape(v)
		if err != nil {
			return "", false
		}
		return un, true
	}
	return "", false
}

// DecodeQueryMessage returns the DER pkiMessage of a GET PKIOperation query.
func DecodeQueryMessage(rawQuery string) ([]byte, error) {
	v, ok := queryValue(rawQuery, "message")
	if !ok {
		return nil, errors.New("missing message parameter")
	}
	der, err := DecodeBase64(v)
	if err != nil || len(der) == 0 {
		return nil, errors.New("message is not valid base64")
	}
	return der, nil
}

// DecodeBase64 accepts standard or URL alphabet, with or without padding,
// with whitespace or spaces standing in for '+' (how some clients POST or
// GET a pkiMessage).
func DecodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ':
			return '+'
		case '\r', '\n', '\t':
			return -1
		}
		return r
	}, s)
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}
