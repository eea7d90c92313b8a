package client

import "testing"

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://ca.example/scep", "http://ca.example/scep"},
		{"http://user:s3cret@ca.example:8080/scep", "http://user:xxxxx@ca.example:8080/scep"},
		{"https://user@ca.example/est", "https://user@ca.example/est"},
		{"http://u:s3cret@ca.example/p@th", "http://u:xxxxx@ca.example/p@th"},
		// Does not parse (a bad escape in the password): cut by hand.
		{"http://u:s3%zzcret@ca.example/scep", "http://xxxxx@ca.example/scep"},
		{"http://u:s3%zz@cret@ca.example/scep", "http://xxxxx@ca.example/scep"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
