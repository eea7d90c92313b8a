package scep

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// The HTTP encoding of SCEP operations (RFC 8894 §4.1), as devices really
// send them.

// Operation reads the operation parameter of a raw query without
// url.ParseQuery's strictness, so an unescaped message parameter cannot
// hide it.
func Operation(rawQuery string) string {
	v, _, _ := queryValue(rawQuery, "operation")
	return v
}

// queryValue finds key in a raw query. Devices send the base64 message
// URL-escaped, unescaped (raw '+' and '/'), or with spaces for '+'; all are
// accepted. A literal '+' is kept as '+', never turned into a space. A
// value that is present but not validly escaped is found, with an error,
// so that it is not mistaken for a missing one.
func queryValue(rawQuery, key string) (value string, found bool, err error) {
	for _, part := range strings.Split(rawQuery, "&") {
		k, v, _ := strings.Cut(part, "=")
		if k != key {
			continue
		}
		un, err := url.PathUnescape(v)
		if err != nil {
			return "", true, err
		}
		return un, true, nil
	}
	return "", false, nil
}

// DecodeQueryMessage returns the DER pkiMessage of a GET PKIOperation query.
func DecodeQueryMessage(rawQuery string) ([]byte, error) {
	v, found, err := queryValue(rawQuery, "message")
	if err != nil {
		// The unescape error quotes the bad escape; the client sent it.
		return nil, fmt.Errorf("the message parameter is not validly URL-escaped: %w", err)
	}
	if !found {
		return nil, errors.New("missing message parameter")
	}
	if v == "" {
		return nil, errors.New("the message parameter is empty: it carries the base64 pkiMessage")
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
