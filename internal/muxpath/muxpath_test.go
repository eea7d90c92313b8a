package muxpath

import "testing"

func TestMatches(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"/api/v1/certificates", "/api/v1/certificates", true},
		{"/api/v1/certificates/{issuer}/{serial}", "/api/v1/certificates/ab/01", true},
		{"/api/v1/certificates/{issuer}/{serial}", "/api/v1/certificates/ab/", false},
		{"/api/v1/certificates/{issuer}/{serial}", "/api/v1/certificates/ab", false},
		{"/ui/{$}", "/ui/", true},
		{"/ui/{$}", "/ui/x", false},
		{"/ui/logout", "/ui/login", false},
	} {
		if got := Matches(tc.pattern, tc.path); got != tc.want {
			t.Errorf("Matches(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}
