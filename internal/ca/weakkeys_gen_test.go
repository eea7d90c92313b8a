package ca

// The converter that makes weakkeys/debian-rsa.bin.gz from blocklists in
// the openssl-blacklist formats; see weakkeys/README.md. It runs only when
// asked to:
//
//	go test ./internal/ca -run TestGenerateDebianWeakList -dwk.in=FILE,FILE… [-dwk.out=weakkeys/debian-rsa.bin.gz]

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

var (
	dwkIn  = flag.String("dwk.in", "", "comma-separated blocklist files to convert into the embedded Debian weak-key list")
	dwkOut = flag.String("dwk.out", "weakkeys/debian-rsa.bin.gz", "where the converted list goes")
)

// readSuffixes reads one blocklist: '#' starts a comment; every other
// non-empty line ends with either the 20 hex digits of a truncated
// fingerprint (Debian's blacklist.RSA-NNNN) or the 40 of a whole SHA-1
// (openssl-vulnkey's blacklists/*/blacklist-NNNN.db, CVE-2008-0166/blocklists),
// of which the last 20 count.
func readSuffixes(name string) ([][dwkSuffixLen]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][dwkSuffixLen]byte
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		h := strings.ToLower(fields[len(fields)-1])
		if len(h) == 2*20 {
			h = h[20:]
		}
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != dwkSuffixLen {
			return nil, fmt.Errorf("%s:%d: want 20 or 40 hex digits at the end of the line", name, line)
		}
		out = append(out, [dwkSuffixLen]byte(b))
	}
	return out, sc.Err()
}

// encodeWeakSuffixes writes the format decodeWeakSuffixes reads:
// deterministic (no name or time in the gzip header), sorted, without
// duplicates.
func encodeWeakSuffixes(suffixes [][dwkSuffixLen]byte) ([]byte, error) {
	s := slices.Clone(suffixes)
	slices.SortFunc(s, func(a, b [dwkSuffixLen]byte) int { return bytes.Compare(a[:], b[:]) })
	s = slices.Compact(s)
	var counts [1 << 16]uint64
	for _, x := range s {
		counts[binary.BigEndian.Uint16(x[:2])]++
	}
	var raw bytes.Buffer
	raw.WriteString(dwkMagic)
	for _, n := range counts {
		raw.Write(binary.AppendUvarint(nil, n))
	}
	for _, x := range s {
		raw.Write(x[2:])
	}
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func TestGenerateDebianWeakList(t *testing.T) {
	if *dwkIn == "" {
		t.Skip("give -dwk.in=FILE,… to regenerate weakkeys/debian-rsa.bin.gz")
	}
	var all [][dwkSuffixLen]byte
	for _, name := range strings.Split(*dwkIn, ",") {
		s, err := readSuffixes(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d entries", name, len(s))
		all = append(all, s...)
	}
	data, err := encodeWeakSuffixes(all)
	if err != nil {
		t.Fatal(err)
	}
	w, err := decodeWeakSuffixes(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if !w.contains(s[:]) {
			t.Fatalf("%x lost in conversion", s)
		}
	}
	if err := os.WriteFile(*dwkOut, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d distinct entries, %d bytes", *dwkOut, w.len(), len(data))
}

func TestWeakSuffixesRoundTrip(t *testing.T) {
	in := [][dwkSuffixLen]byte{
		{0xff, 0xff, 9, 9, 9, 9, 9, 9, 9, 9},
		{0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
		{0x12, 0x34, 1, 2, 3, 4, 5, 6, 7, 8},
		{0x12, 0x34, 1, 2, 3, 4, 5, 6, 7, 7},
		{0x12, 0x34, 1, 2, 3, 4, 5, 6, 7, 8}, // duplicate
	}
	data, err := encodeWeakSuffixes(in)
	if err != nil {
		t.Fatal(err)
	}
	w, err := decodeWeakSuffixes(data)
	if err != nil {
		t.Fatal(err)
	}
	if w.len() != 4 {
		t.Errorf("%d entries, want 4", w.len())
	}
	for _, s := range in {
		if !w.contains(s[:]) {
			t.Errorf("%x not found", s)
		}
	}
	for _, s := range [][dwkSuffixLen]byte{{}, {0x12, 0x34, 1, 2, 3, 4, 5, 6, 7, 9}, {0xff, 0xfe, 9, 9, 9, 9, 9, 9, 9, 9}} {
		if w.contains(s[:]) {
			t.Errorf("%x found", s)
		}
	}
	again, _ := encodeWeakSuffixes(in)
	if !bytes.Equal(data, again) {
		t.Error("the conversion is not deterministic")
	}
	for name, bad := range map[string][]byte{"empty": nil, "not gzip": []byte("Modulus="), "truncated": data[:len(data)-8]} {
		if _, err := decodeWeakSuffixes(bad); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestReadSuffixes(t *testing.T) {
	file := t.TempDir() + "/blacklist"
	content := "# comment\n\n0123456789abcdef0123\n2048 1 rnd x86_64 FFFFFFFFFFFFFFFFFFFF00000000000000000001 # vulnkey .db line\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := readSuffixes(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 2 || hex.EncodeToString(s[0][:]) != "0123456789abcdef0123" || hex.EncodeToString(s[1][:]) != "00000000000000000001" {
		t.Errorf("read %x", s)
	}
	if err := os.WriteFile(file, []byte("xyz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readSuffixes(file); err == nil {
		t.Error("a malformed line was accepted")
	}
}
