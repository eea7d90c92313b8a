package sqlstore

import "testing"

func TestSerialSearch(t *testing.T) {
	for _, tc := range []struct {
		term string
		want SerialMatch
		ok   bool
	}{
		{"06d566576d8ceb76106b9cf8761cf18f", SerialMatch{Prefix: "6d566576d8ceb76106b9cf8761cf18f"}, true},
		{"06:d5:66:57", SerialMatch{Contains: "06d56657", Prefix: "6d56657"}, true},
		{"06:d5:66:57:", SerialMatch{Contains: "06d56657", Prefix: "6d56657"}, true}, // a line of -text
		{"6:d5:6", SerialMatch{Contains: "6d56"}, true},                              // cut octets at both ends
		{"d5:66", SerialMatch{Contains: "d566"}, true},
		{"0x06d5", SerialMatch{Prefix: "6d5"}, true},
		{"0xd5", SerialMatch{Contains: "d5"}, true},
		{"0006", SerialMatch{Prefix: "6"}, true},
		// Found as they are, or no serial.
		{"6d5", SerialMatch{}, false},
		{"deadbeef", SerialMatch{}, false},
		{"00", SerialMatch{}, false},
		{"0x", SerialMatch{}, false},
		{"06d5x", SerialMatch{}, false},
		{"fe80::1", SerialMatch{}, false},
		{"d5:6:66", SerialMatch{}, false},
		{"d5:666", SerialMatch{}, false},
		{"device-06", SerialMatch{}, false},
		{":", SerialMatch{}, false},
	} {
		got, ok := SerialSearch(tc.term)
		if got != tc.want || ok != tc.ok {
			t.Errorf("SerialSearch(%q) = %+v, %v; want %+v, %v", tc.term, got, ok, tc.want, tc.ok)
		}
	}
}
