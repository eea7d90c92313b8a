package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

func rsaKey(t *testing.T, bits int) crypto.PublicKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func ecKey(t *testing.T, c elliptic.Curve) crypto.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// closePrimes builds a 2048-bit modulus whose factors are neighbouring
// primes, which Fermat's method factors at once.
func closePrimes(t *testing.T) *rsa.PublicKey {
	t.Helper()
	p, err := rand.Prime(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	q := new(big.Int).Add(p, big.NewInt(2))
	for !q.ProbablyPrime(20) {
		q.Add(q, big.NewInt(2))
	}
	return &rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537}
}

func TestCheckKey(t *testing.T) {
	rsa2048 := rsaKey(t, 2048).(*rsa.PublicKey)
	big2048 := rsa2048.N
	e3 := &rsa.PublicKey{N: big2048, E: 3}
	small := &rsa.PublicKey{N: new(big.Int).Mul(big.NewInt(751), new(big.Int).Rsh(big2048, 10)), E: 65537}
	if small.N.BitLen() < 2048 {
		small.N.Lsh(small.N, uint(2048-small.N.BitLen()))
	}
	even := &rsa.PublicKey{N: new(big.Int).SetBit(new(big.Int).Set(big2048), 0, 0), E: 65537}
	ed, _, _ := ed25519.GenerateKey(rand.Reader)
	offCurve := ecKey(t, elliptic.P256()).(*ecdsa.PublicKey)
	offCurve = &ecdsa.PublicKey{Curve: offCurve.Curve, X: offCurve.X, Y: new(big.Int).Add(offCurve.Y, big.NewInt(1))}

	def := pki.DefaultKeyPolicy
	withP521 := pki.KeyPolicy{RSAMinBits: 2048, RSAMaxBits: 4096, ECCurves: []string{"P-256", "p521"}}
	ecOnly := pki.KeyPolicy{ECCurves: []string{"P-256"}}
	rsaOnly := pki.KeyPolicy{RSAMinBits: 3072}
	tests := []struct {
		name   string
		policy pki.KeyPolicy
		pub    crypto.PublicKey
		want   string // "" = accepted
	}{
		{"RSA-1024", def, rsaKey(t, 1024), "RSA key of 1024 bits is below the profile minimum of 2048"},
		{"RSA-2048", def, rsa2048, ""},
		{"RSA-3072", def, rsaKey(t, 3072), ""},
		{"RSA-4096", def, rsaKey(t, 4096), ""},
		{"RSA-4096 above max", withP521, rsaKey(t, 4096+8), "above the profile maximum of 4096"},
		{"RSA-2048 below 3072", rsaOnly, rsa2048, "below the profile minimum of 3072"},
		{"RSA above default max", pki.KeyPolicy{RSAMinBits: 2048}, &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 8192), E: 65537}, "above the profile maximum of 8192"},
		{"exponent 3", def, e3, "exponent 3 is not allowed"},
		{"small factor", def, small, "prime factor below 752"},
		{"even modulus", def, even, "is even"},
		{"close primes", def, closePrimes(t), "too close together"},
		{"Debian weak key (CVE-2008-0166)", def, &rsa.PublicKey{N: debianWeak2048, E: 65537}, "CVE-2008-0166"},
		{"ROCA 2048", def, &rsa.PublicKey{N: rocaMod03, E: 65537}, "ROCA, CVE-2017-15361"},
		{"ROCA 4096", def, &rsa.PublicKey{N: rocaMod09, E: 65537}, "Infineon"},
		{"RSA not allowed", ecOnly, rsa2048, "RSA keys are not accepted"},
		{"P-256", def, ecKey(t, elliptic.P256()), ""},
		{"P-384", def, ecKey(t, elliptic.P384()), ""},
		{"P-224 refused", def, ecKey(t, elliptic.P224()), "EC key on curve P-224 is not accepted by this profile (allowed: P-256, P-384)"},
		{"P-521 refused", def, ecKey(t, elliptic.P521()), "curve P-521 is not accepted"},
		{"P-521 listed", withP521, ecKey(t, elliptic.P521()), ""},
		{"P-384 not listed", withP521, ecKey(t, elliptic.P384()), "not accepted"},
		{"EC not allowed", rsaOnly, ecKey(t, elliptic.P256()), "EC keys are not accepted by this profile (RSA only)"},
		{"point not on curve", def, offCurve, "not a valid point"},
		{"Ed25519", def, ed, "Ed25519 keys are not accepted"},
		{"nil", def, nil, "no public key"},
		{"empty RSA", def, &rsa.PublicKey{}, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckKey(tt.policy, tt.pub)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if codeOf(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), tt.want) {
				t.Fatalf("err = %v, want bad request containing %q", err, tt.want)
			}
		})
	}
}

func TestFermatBoundary(t *testing.T) {
	// Random 2048-bit keys are never flagged.
	for range 5 {
		k := rsaKey(t, 2048).(*rsa.PublicKey)
		if fermatFactorable(k.N, fermatRounds) {
			t.Fatal("random key flagged")
		}
	}
	// Fermat needs about (p-q)^2 / (8 sqrt(n)) rounds: factors 2^516 apart
	// take ~32 rounds (found), 2^520 apart ~512 rounds (beyond the bound).
	p, _ := rand.Prime(rand.Reader, 1024)
	apart := func(bits uint) *big.Int {
		q := new(big.Int).Add(p, new(big.Int).Lsh(big.NewInt(1), bits))
		for !q.ProbablyPrime(20) {
			q.Add(q, big.NewInt(1))
		}
		return new(big.Int).Mul(p, q)
	}
	if n := apart(516); !fermatFactorable(n, fermatRounds) || fermatFactorable(n, 1) {
		t.Error("factors 2^516 apart: want found within 100 rounds but not in 1")
	}
	if fermatFactorable(apart(520), fermatRounds) {
		t.Error("factors 2^520 apart found within 100 rounds")
	}
	if !fermatFactorable(big.NewInt(49), 1) {
		t.Error("perfect square not flagged")
	}
}

func hexInt(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 16)
	if !ok {
		panic("bad hex " + s)
	}
	return n
}

var (
	// debianWeak2048 is the modulus of a 2048-bit key made by Debian's broken
	// OpenSSL 0.9.8c on x86 (github.com/hoefling/dsa-1571 at 0a277afe,
	// keys/debian-openssl-0.9.8c-x86-prng-bug-2048.key, MIT; its README shows
	// openssl-vulnkey calling it COMPROMISED with fingerprint b724c825…9eee).
	debianWeak2048 = hexInt(
		"B10D121121C6DFF5E0E4428A9D334183C5AB92B1B6E4DF74BD2BCF10DC12CC2D5117B39624324371A905376295DF4DEAE793" +
			"B65D2151A7573FE7ECDD6A89711557E24627DE6D114904B6FCE6024205DB13EC30BE8576E95F09AD9BB9D9AF71BE02A5D1CC" +
			"61FB9D4E76EF46269A5545AB633C87047B53DDD2832CDCE9F695BE788B4BF569D9514B18172E189D72A142C816F087859A17" +
			"CA19F03CDB0F92293F8FED0ABEB8E931EBD280E590661FDCE23BE4266EFB599A3C83554DBC1B21533B14ED8A108B8225A733" +
			"71710B5ADD8F96B6B5C8B996EAFC43E0BF8F1AD27B763B3200C21F364793B83AA98FE4AAE4DA08211C2E4B39B2524A8D965B" +
			"16E4DE9DA993")

	// ROCA test vectors of the roca-detect tool (github.com/crocs-muni/roca at
	// df6071d5, roca/tests/data/, MIT): mod03 (2048 bits) and mod09 (4096 bits)
	// are Infineon RSALib moduli, mod01 a 512-bit one; mod06 is mod03 with its
	// first hex digit changed, which the tool must not flag.
	rocaMod03 = hexInt(
		"9dcd7420e420c270a68060eb8b5aa7457a9f6648f86fafed2775cc1f79ae962f1e63f1b9e51c55f9ea6fdc7332e9b0058c9f" +
			"f2eb1fc89855029cf6aafe21e689feb38ac9ffb12f1ce371bb5d0e9aae64161abce74b4244bf68f1edb4411f756a097c8929" +
			"c14740245ea355f8332d1aa36bb50c7dcb4505da8de02e4e53d38f8df06097da7524df0df93db48eac8cc4af2d3a16257eb2" +
			"b2adca6ba464e5974fa92550d31b1babf161e7692d00b86e3dd886ecab4abfbe1a8f8cc263ff4af55cdb45f4249a5193925f" +
			"5e983d762f0b6800943eb0267b08f42ed311ce1f5c86eacbc8ce4d3cb7a2fee1ef5641423a1cf4114e5ecf50034a60a41252" +
			"3af9e6f4aa11")
	rocaMod09 = hexInt(
		"c39a928060db513091b604eadad719ed94e246de8fe15fb76efab5cfabbc3fc5486fe2ef2a5a5a8472f0c5be089edec071fb" +
			"284df4467fa1fa6c8f0b013d3173fe636744666289bf67b5c998c87b59015d94bb9c20d30a70cfe275e42fd3c6f44d4c5252" +
			"f9c6b6803f92afd928153bdb90ef08ede934c076f33543f9a1c362130929b9a1324c5ebee6831c251c48a7dee24d75ac538c" +
			"e9a58d7ff09c12a5d772b6c33f4265a4e4830bd73ad221d24d4d3f092e24279c15fc1d10ca69561f4f071313c86b11ab36a5" +
			"dd28df392f581834eecfdc9e183a466198e33cf01d273bd41d4b7e288cc66f24eba04676bd2090f6f73830336a317bc2d423" +
			"b558b9d8f632e12af7b0e7fc9bdb69282e81fdf41a68cf4e85f01fc343dfe52a3ad01f67459d380165159e1209ef1ce4ecd2" +
			"6648e061faf0896551f7f1f92d6b6a19af0ab7f1f092d7e168bcec0ee478b8618489a8967a71e5e0a5c197662d8e9756f090" +
			"a177109d4a34ae20a18c5629efea5ca66623960fc325f779cdae891a7ec051f00e837b8f2fb9fd19f6a35832ca0e5ce83759" +
			"72c42a308f7d5ca0434022c131874087e826ed737994e46fbe44f5f1e908934f6033e6851ebd05447dddbaa51c0671849caf" +
			"d3a503cdc150101914edf33b140c168c3dbea4791e74ea619ab1b31c90691de1d425b746b222a2b26ed54222cbcaf27a054f" +
			"9f66f77be6466198c33e37dd")
	rocaMod01 = hexInt(
		"944e13208a280c37efc31c3114485e590192adbb8e11c87cad60cdef0037ce99278330d3f471a2538fa667802ed2a3c44a8b" +
			"7dea826e888d0aa341fd664f7fa7")
	rocaMod06 = hexInt(
		"8dcd7420e420c270a68060eb8b5aa7457a9f6648f86fafed2775cc1f79ae962f1e63f1b9e51c55f9ea6fdc7332e9b0058c9f" +
			"f2eb1fc89855029cf6aafe21e689feb38ac9ffb12f1ce371bb5d0e9aae64161abce74b4244bf68f1edb4411f756a097c8929" +
			"c14740245ea355f8332d1aa36bb50c7dcb4505da8de02e4e53d38f8df06097da7524df0df93db48eac8cc4af2d3a16257eb2" +
			"b2adca6ba464e5974fa92550d31b1babf161e7692d00b86e3dd886ecab4abfbe1a8f8cc263ff4af55cdb45f4249a5193925f" +
			"5e983d762f0b6800943eb0267b08f42ed311ce1f5c86eacbc8ce4d3cb7a2fee1ef5641423a1cf4114e5ecf50034a60a41252" +
			"3af9e6f4aa11")
)

// The embedded Debian list loads, and the fingerprint is openssl's: the one
// openssl-vulnkey printed for the same key.
func TestDebianWeakKeys(t *testing.T) {
	start := time.Now()
	w, err := loadDebianWeak()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Debian weak-key list: %d entries from %d embedded bytes, loaded in %v", w.len(), len(debianWeakData), time.Since(start))
	if fp := debianFingerprint(debianWeak2048); hex.EncodeToString(fp[:]) != "b724c8256936fad04f50042dcb33f1f6f3ce9eee" {
		t.Fatalf("fingerprint %x, want openssl-vulnkey's b724c825…9eee", fp)
	}
	if weak, err := isDebianWeak(debianWeak2048); err != nil || !weak {
		t.Fatalf("the known Debian weak key is not found (%v)", err)
	}
	for range 3 {
		if weak, _ := isDebianWeak(rsaKey(t, 2048).(*rsa.PublicKey).N); weak {
			t.Fatal("a fresh key is on the Debian list")
		}
	}
}

// The subgroups computed here are the marker masks the roca-detect tool
// publishes (roca/detect.py, RocaFingerprinter.prints; the first 17 fit in
// 64 bits), and its test vectors are classified as it classifies them.
func TestROCAFingerprint(t *testing.T) {
	published := []uint64{6, 30, 126, 1026, 5658, 107286, 199410, 8388606, 536870910, 2147483646, 67109890,
		2199023255550, 8796093022206, 140737488355326, 5310023542746834, 576460752303423486, 1455791217086302986}
	for i, want := range published {
		if got := rocaSubgroups[i]; got[0] != want || got[1] != 0 || got[2] != 0 {
			t.Errorf("p=%d: subgroup mask %x, want %x", rocaPrimes[i], got, want)
		}
	}
	for name, n := range map[string]*big.Int{"mod01": rocaMod01, "mod03": rocaMod03, "mod09": rocaMod09} {
		if !hasROCAFingerprint(n) {
			t.Errorf("%s (ROCA-vulnerable) not flagged", name)
		}
	}
	if hasROCAFingerprint(rocaMod06) {
		t.Error("mod06 (not vulnerable) flagged")
	}
	for _, bits := range []int{2048, 3072, 4096} {
		if n := rsaKey(t, bits).(*rsa.PublicKey).N; hasROCAFingerprint(n) {
			t.Errorf("a fresh %d-bit key flagged", bits)
		}
	}
	for _, p := range []uint64{3, 167, 65537} {
		if got, want := modSmall(rocaMod09, p), new(big.Int).Mod(rocaMod09, new(big.Int).SetUint64(p)).Uint64(); got != want {
			t.Errorf("mod %d = %d, want %d", p, got, want)
		}
	}
}

func TestCheckSignatureAlgorithm(t *testing.T) {
	for _, tt := range []struct {
		alg    x509.SignatureAlgorithm
		legacy bool
		want   string // "" = accepted
	}{
		{x509.SHA256WithRSA, false, ""},
		{x509.SHA384WithRSA, false, ""},
		{x509.SHA256WithRSAPSS, false, ""},
		{x509.ECDSAWithSHA256, false, ""},
		{x509.ECDSAWithSHA384, false, ""},
		{x509.PureEd25519, false, ""},
		{x509.SHA1WithRSA, false, "signed with SHA-1 (SHA1-RSA), which this profile refuses"},
		{x509.ECDSAWithSHA1, false, "signed with SHA-1 (ECDSA-SHA1), which this profile refuses"},
		{x509.SHA1WithRSA, true, ""},
		{x509.ECDSAWithSHA1, true, ""},
		{x509.MD5WithRSA, false, "MD5-RSA, which is broken"},
		{x509.MD5WithRSA, true, "MD5-RSA, which is broken"},
		{x509.MD2WithRSA, true, "broken"},
		{x509.DSAWithSHA1, false, "DSA (DSA-SHA1)"},
		{x509.UnknownSignatureAlgorithm, true, "rsa_pss_saltlen:digest"},
		{x509.DSAWithSHA256, true, "DSA (DSA-SHA256)"},
	} {
		err := CheckSignatureAlgorithm(&x509.CertificateRequest{SignatureAlgorithm: tt.alg}, tt.legacy)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%v (legacy %v): refused: %v", tt.alg, tt.legacy, err)
			}
			continue
		}
		if codeOf(err) != pki.EBadAlg || !strings.Contains(pki.ErrorMessage(err), tt.want) {
			t.Errorf("%v (legacy %v): %v, want bad_alg containing %q", tt.alg, tt.legacy, err, tt.want)
		}
	}
}

// BenchmarkKnownWeakChecks is the cost the two checks add to every RSA key.
func BenchmarkKnownWeakChecks(b *testing.B) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	if _, err := loadDebianWeak(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if weak, _ := isDebianWeak(k.N); weak || hasROCAFingerprint(k.N) {
			b.Fatal("flagged")
		}
	}
}

func BenchmarkDebianWeakLoad(b *testing.B) {
	for range b.N {
		if _, err := decodeWeakSuffixes(debianWeakData); err != nil {
			b.Fatal(err)
		}
	}
}

// An operator's blocklist (openssl-blacklist lines or boulder's JSON) adds
// to the built-in one.
// A key on an operator's --weak-keys-file list is refused in either of its
// formats, and the refusal names that list (its base name, not the path),
// not Debian: such a list may hold keys compromised in any way. A key on
// the built-in Debian list keeps the Debian reason, whatever else lists it.
func TestWeakKeyFile(t *testing.T) {
	key := testRSAKey(t)
	suffixOf := func(n *big.Int) string {
		fp := debianFingerprint(n)
		return hex.EncodeToString(fp[sha1.Size-dwkSuffixLen:])
	}
	suffix := suffixOf(key.N)
	dir := filepath.Join(t.TempDir(), "secret-dir")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	text := write("blacklist.RSA-2048", "# comment\n0123456789abcdef0123\n"+suffix+"\n")
	js := write("weak.json", `["`+suffix+`"]`)
	other := write("other.txt", "0123456789abcdef0123\n")
	debian := write("debian-too.txt", suffixOf(debianWeak2048)+"\n")
	for _, tc := range []struct {
		name  string
		files []string
		pub   *rsa.PublicKey
		fresh bool   // a key of no Debian list, which CheckKey takes without the files
		want  string // in the refusal
	}{
		{"openssl-blacklist lines", []string{text}, &key.PublicKey, true, `on the blocklist "blacklist.RSA-2048" (--weak-keys-file)`},
		{"boulder's JSON", []string{js}, &key.PublicKey, true, `on the blocklist "weak.json" (--weak-keys-file)`},
		{"the second of two files", []string{other, js}, &key.PublicKey, true, `on the blocklist "weak.json"`},
		{"a Debian key on an operator's list too", []string{debian}, &rsa.PublicKey{N: debianWeak2048, E: 65537}, false, "Debian's broken OpenSSL (CVE-2008-0166)"},
	} {
		w, err := LoadWeakKeyFile(tc.files...)
		if err != nil {
			t.Fatal(err)
		}
		policy := pki.DefaultKeyPolicy
		if tc.fresh {
			if err := CheckKey(policy, tc.pub); err != nil {
				t.Fatalf("%s: without the file: %v", tc.name, err)
			}
		}
		policy.Blocklist = w
		err = CheckKey(policy, tc.pub)
		msg := pki.ErrorMessage(err)
		if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		if tc.fresh && (strings.Contains(msg, "Debian") || strings.Contains(msg, "CVE-2008-0166") || strings.Contains(msg, "secret-dir")) {
			t.Errorf("%s: %q calls an operator's entry a Debian key, or shows the file's directory", tc.name, msg)
		}
	}
	bad := write("bad", "not hex\n")
	if _, err := LoadWeakKeyFile(bad); err == nil {
		t.Error("a malformed file loaded")
	}
}

func testRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// CheckKeySize refuses a huge RSA key without computing anything with it,
// under the policy's maximum or the default 8192 bits.
func TestCheckKeySize(t *testing.T) {
	big9000 := new(big.Int).Lsh(big.NewInt(1), 9000)
	huge := &rsa.PublicKey{N: big9000.Add(big9000, big.NewInt(1)), E: 65537}
	if err := CheckKeySize(pki.KeyPolicy{}, huge); pki.ErrorCode(err) != pki.EBadRequest {
		t.Errorf("a 9001-bit key under the default maximum: %v", err)
	}
	if err := CheckKeySize(pki.KeyPolicy{RSAMaxBits: 16384}, huge); err != nil {
		t.Errorf("a 9001-bit key under a 16384-bit maximum: %v", err)
	}
	if err := CheckKeySize(pki.KeyPolicy{}, &rsa.PublicKey{N: big.NewInt(0).Lsh(big.NewInt(1), 2047), E: 65537}); err != nil {
		t.Errorf("a 2048-bit key: %v", err)
	}
}

// An RSASSA-PSS key (openssl req -newkey rsa-pss) is no key crypto/x509
// reads: the request is refused for its key type, not as badly signed.
func TestCheckKeySizeUnreadableKey(t *testing.T) {
	der := rsaPSSKeyRequest(t)
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if req.PublicKey != nil {
		t.Fatalf("crypto/x509 read the RSASSA-PSS key as %T", req.PublicKey)
	}
	err = CheckKeySize(pki.DefaultKeyPolicy, req.PublicKey)
	if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), "RSASSA-PSS") {
		t.Errorf("CheckKeySize = %v, want a bad request naming RSASSA-PSS keys", err)
	}
}

// rsaPSSKeyRequest is a certificate request whose SubjectPublicKeyInfo
// says id-RSASSA-PSS, as OpenSSL writes for an rsa-pss key (the signature
// is not checked here).
func rsaPSSKeyRequest(t *testing.T) []byte {
	t.Helper()
	k := genKey(t, "rsa2048")
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "pss"}}, k)
	if err != nil {
		t.Fatal(err)
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	rsaEncryption := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01}
	rsaPSS := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a}
	i := bytes.Index(der, req.RawSubjectPublicKeyInfo)
	j := bytes.Index(der[i:], rsaEncryption)
	if i < 0 || j < 0 {
		t.Fatal("no rsaEncryption in the request's key")
	}
	out := bytes.Clone(der)
	copy(out[i+j:], rsaPSS)
	return out
}
