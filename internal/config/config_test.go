package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newSet() (*flag.FlagSet, *string, *string, *bool) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("config", "", "")
	listen := fs.String("listen", "127.0.0.1:8080", "")
	dir := fs.String("data-dir", "./d", "")
	des := fs.Bool("allow-insecure-des", false, "")
	return fs, listen, dir, des
}

func TestPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(file, []byte("listen = \"file:1\"\ndata_dir = \"/from/file\"\nallow_insecure_des = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantListen string
		wantDir    string
		wantDES    bool
	}{
		{"defaults", nil, nil, "127.0.0.1:8080", "./d", false},
		{"file", []string{"--config", file}, nil, "file:1", "/from/file", true},
		{"config from env", nil, map[string]string{"SCEPTER_CONFIG": file}, "file:1", "/from/file", true},
		{"env beats file", []string{"--config", file}, map[string]string{"SCEPTER_LISTEN": "env:2"}, "env:2", "/from/file", true},
		{"flag beats env", []string{"--config", file, "--listen", "flag:3"}, map[string]string{"SCEPTER_LISTEN": "env:2"}, "flag:3", "/from/file", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, listen, dir, des := newSet()
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			if err := Parse(fs, tt.args, lookup, nil, nil); err != nil {
				t.Fatal(err)
			}
			if *listen != tt.wantListen || *dir != tt.wantDir || *des != tt.wantDES {
				t.Errorf("got listen=%q dir=%q des=%v", *listen, *dir, *des)
			}
		})
	}
}

func TestUnknownKeysAndBadValues(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"unknown key": "listen = \"x\"\nlisten_port = 3\n",
		"bad bool":    "allow_insecure_des = \"maybe\"\n",
		"table":       "[listen]\na = 1\n",
		"bad toml":    "listen = \n",
		// Both would name --allow-insecure-des, one winning by map order.
		"a hyphen twin": "allow_insecure_des = false\nallow-insecure-des = true\n",
		"a hyphen":      "allow-insecure-des = true\n",
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".toml")
			os.WriteFile(file, []byte(content), 0o600)
			fs, _, _, _ := newSet()
			if err := Parse(fs, []string{"--config", file}, func(string) (string, bool) { return "", false }, nil, nil); err == nil {
				t.Fatal("expected an error")
			}
		})
	}
	fs, _, _, _ := newSet()
	err := Parse(fs, nil, func(k string) (string, bool) { return "yes please", k == "SCEPTER_ALLOW_INSECURE_DES" }, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "SCEPTER_ALLOW_INSECURE_DES") {
		t.Fatalf("bad env value: err = %v", err)
	}
}
