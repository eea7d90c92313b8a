package ca

import (
	"os"
	"testing"
)

var tempRoot string

func makeTempDir() (string, error) { return os.MkdirTemp(tempRoot, "ca-") }

func TestMain(m *testing.M) {
	var err error
	tempRoot, err = os.MkdirTemp("", "scepter-ca-test-")
	if err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(tempRoot)
	os.Exit(code)
}
