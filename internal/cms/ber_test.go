package cms

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNormalize(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"DER unchanged", "30 03 02 01 05", "30 03 02 01 05"},
		{"indefinite SEQUENCE", "30 80 02 01 05 00 00", "30 03 02 01 05"},
		{"non-minimal length", "30 81 03 02 01 05", "30 03 02 01 05"},
		{"non-minimal long length", "04 82 00 02 aa bb", "04 02 aa bb"},
		{"segmented OCTET STRING", "24 80 04 02 aa bb 04 01 cc 00 00", "04 03 aa bb cc"},
		{"definite segmented OCTET STRING", "24 07 04 02 aa bb 04 01 cc", "04 03 aa bb cc"},
		{"nested segments", "24 80 24 80 04 01 aa 00 00 04 01 bb 00 00", "04 02 aa bb"},
		{"empty segmented OCTET STRING", "24 80 00 00", "04 00"},
		{"explicit tag around indefinite", "a0 80 30 80 05 00 00 00 00 00", "a0 04 30 02 05 00"},
		{"constructed [0] implicit kept", "a0 80 04 01 aa 04 01 bb 00 00", "a0 06 04 01 aa 04 01 bb"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := normalize(unhex(t, tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tc.want); !bytes.Equal(got, want) {
				t.Fatalf("got % x, want % x", got, want)
			}
		})
	}
}

func TestNormalizeRejects(t *testing.T) {
	deep := bytes.Repeat([]byte{0x30, 0x80}, 100000)
	deepDER := []byte{0x04, 0x00}
	for range maxDepth + 2 {
		deepDER = append(appendHeader(nil, 0x30, len(deepDER)), deepDER...)
	}
	cases := map[string][]byte{
		"empty":                       {},
		"truncated header":            {0x30},
		"truncated content":           {0x30, 0x05, 0x02, 0x01},
		"trailing data":               {0x05, 0x00, 0x00},
		"missing EOC":                 {0x30, 0x80, 0x05, 0x00},
		"EOC in definite content":     {0x30, 0x02, 0x00, 0x00},
		"bare EOC":                    {0x00, 0x00},
		"indefinite primitive":        {0x04, 0x80, 0x00, 0x00},
		"5-byte length":               {0x04, 0x85, 0, 0, 0, 0, 1, 0},
		"huge length":                 {0x04, 0x84, 0xff, 0xff, 0xff, 0xff},
		"high tag number":             {0x1f, 0x81, 0x00, 0x00},
		"non-octet segment":           {0x24, 0x80, 0x02, 0x01, 0x00, 0x00, 0x00},
		"depth bomb (indefinite)":     deep,
		"depth bomb (definite)":       deepDER,
		"reserved length 0xff":        {0x04, 0xff},
		"EOC with non-zero length":    {0x30, 0x80, 0x00, 0x01, 0xaa, 0x00, 0x00},
		"segment overruns its parent": {0x24, 0x03, 0x04, 0x02, 0xaa, 0xbb},
	}
	for name, in := range cases {
		if _, err := normalize(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	big := make([]byte, MaxMessageSize+1)
	if _, err := normalize(big); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversize: %v", err)
	}
}

// Every captured message survives DER -> BER -> normalize byte for byte.
func TestNormalizeUndoesBER(t *testing.T) {
	for _, tc := range captures {
		der := requestMessage(t, filepath.Join(scepDir, tc.name))
		ber := toBER(t, der)
		if bytes.Equal(ber, der) {
			t.Fatalf("%s: toBER changed nothing", tc.name)
		}
		got, err := normalize(ber)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !bytes.Equal(got, der) {
			t.Fatalf("%s: normalize(toBER(der)) != der", tc.name)
		}
	}
}

// A streamed envelope: indefinite lengths and a constructed [0] IMPLICIT
// encryptedContent made of segments, as `openssl cms -stream` writes.
func TestParseBEREnvelope(t *testing.T) {
	ids := testIdentities(t)
	content := []byte("streamed content, several blocks long......")
	for _, c := range []ContentCipher{DES3CBC, AES256CBC, AES128GCM} {
		der, err := Encrypt(content, []*x509.Certificate{ids["rsa"].cert}, EncryptOptions{Cipher: c})
		if err != nil {
			t.Fatal(err)
		}
		ber, rest := berify(t, der, true)
		if len(rest) != 0 || !bytes.Contains(ber, []byte{0xa0, 0x80, 0x04, 0x03}) {
			t.Fatalf("%v: encryptedContent was not segmented", c)
		}
		ed, err := ParseEnvelopedData(ber)
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		got, err := ed.DecryptKeyTransport(ids["rsa"].cert, asDecrypter(t, ids["rsa"].key))
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("%v: %v", c, err)
		}
	}
	if _, err := Encrypt(content, nil, EncryptOptions{}); err == nil {
		t.Fatal("Encrypt without recipients accepted")
	}
}
