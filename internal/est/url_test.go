package est_test

import (
	"errors"
	"testing"

	"github.com/scepter/scepter/internal/est"
)

func TestParseClientURL(t *testing.T) {
	for _, tc := range []struct {
		raw         string
		host, label string
		err         error
	}{
		{raw: "https://ca.example", host: "ca.example"},
		{raw: "https://ca.example:8443/", host: "ca.example:8443"},
		{raw: "https://[::1]:8443/default", host: "[::1]:8443", label: "default"},
		{raw: "https://ca.example/.well-known/est", host: "ca.example"},
		{raw: "https://ca.example/.well-known/est/", host: "ca.example"},
		{raw: "https://ca.example/.well-known/est/default", host: "ca.example", label: "default"},
		{raw: "https://ca.example//default//", host: "ca.example", label: "default"},
		{raw: "https://ca.example/.well-known/estdefault", err: est.ErrURLLabel},
		{raw: "https://ca.example/.well-known/est/a/b", err: est.ErrURLLabel},
		{raw: "https://ca.example/a/b", err: est.ErrURLLabel},
		{raw: "https://ca.example/?x=1", err: est.ErrURLQuery},
		{raw: "https://ca.example/?", err: est.ErrURLQuery},
		{raw: "https://ca.example#f", err: est.ErrURLQuery},
		{raw: "https://ca.example/default#", err: est.ErrURLQuery},
		{raw: "https://ca.example/default?#", err: est.ErrURLQuery},
		{raw: "https://u:pw@ca.example", err: est.ErrURLCredentials},
		{raw: "https://u@ca.example", err: est.ErrURLCredentials},
		{raw: "http://ca.example", err: est.ErrURLScheme},
		{raw: "ca.example:8443", err: est.ErrURLScheme},
		{raw: "https:///default", err: est.ErrURLScheme},
		{raw: "https://ca.example/%zz", err: est.ErrURLScheme},
	} {
		host, label, err := est.ParseClientURL(tc.raw)
		if !errors.Is(err, tc.err) || host != tc.host || label != tc.label {
			t.Errorf("ParseClientURL(%q) = %q, %q, %v; want %q, %q, %v", tc.raw, host, label, err, tc.host, tc.label, tc.err)
		}
	}
}
