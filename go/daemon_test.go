package cachekit

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The tests run against a real cachekitd. TestMain starts one in a temp dir of its own under a
// unique instance name (so it never meets another daemon), from $CACHEKITD_BIN (scripts/test-go
// builds it and sets it), with --max-value-bytes 64KiB; or uses the daemon already at
// $CACHEKIT_TEST_SOCKET (scripts/bench-hit). Its socket goes into CACHEKIT_SOCKET, where the
// examples and the helper processes of procs_test.go find it.

// testSocket is the socket of the daemon the tests share.
var testSocket string

// The variables a daemon or a client would read from the environment: cleared, so a daemon
// running on this machine cannot leak in.
var cachekitEnv = []string{"CACHEKIT_SOCKET", "CACHEKIT_INSTANCE", "CACHEKIT_DIR", "CACHEKIT_NAMESPACE",
	"CACHEKIT_REDIS_URL", "CACHEKIT_CONFIG", "NOTIFY_SOCKET"}

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		// A helper process of procs_test.go: the parent's daemon is in CACHEKIT_SOCKET.
		os.Exit(m.Run())
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if s := os.Getenv("CACHEKIT_TEST_SOCKET"); s != "" {
		testSocket = s
	} else {
		bin := os.Getenv("CACHEKITD_BIN")
		if bin == "" {
			fmt.Fprintln(os.Stderr, "the tests need a cachekitd: set CACHEKITD_BIN to a built one "+
				"(cargo build --profile ci -p cachekitd; scripts/test-go does it all)")
			return 2
		}
		d, err := startDaemon(bin, "--max-value-bytes", "64KiB")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer d.stop()
		testSocket = d.socket
	}
	for _, k := range cachekitEnv {
		os.Unsetenv(k)
	}
	os.Setenv("CACHEKIT_SOCKET", testSocket)
	return m.Run()
}

// daemon is a cachekitd of the tests' own, in a temp dir.
type daemon struct {
	bin, dir, instance, socket, log string
	args                            []string
	cmd                             *exec.Cmd
	done                            chan struct{}
}

var daemons atomic.Int64

func startDaemon(bin string, extra ...string) (*daemon, error) {
	dir, err := os.MkdirTemp("", "cachekit-go-test-")
	if err != nil {
		return nil, err
	}
	instance := fmt.Sprintf("gotest-%d-%d", os.Getpid(), daemons.Add(1))
	d := &daemon{
		bin: bin, dir: dir, instance: instance,
		socket: filepath.Join(dir, instance+".sock"),
		log:    filepath.Join(dir, "cachekitd.log"),
		args:   append([]string{"--dir", dir, "--instance", instance, "--log", "warn"}, extra...),
	}
	if err := d.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return d, nil
}

// start runs the daemon and waits (10 s at most) until its socket accepts connections.
func (d *daemon) start() error {
	logf, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(d.bin, d.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CACHEKIT_") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", d.bin, err)
	}
	d.cmd, d.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-d.done:
			return fmt.Errorf("cachekitd exited at start (%v); log:\n%s", cmd.ProcessState, d.logText())
		default:
		}
		if conn, err := net.Dial("unix", d.socket); err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			d.kill()
			return fmt.Errorf("cachekitd did not accept connections on %s within 10 s; log:\n%s", d.socket, d.logText())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// kill stops the daemon with SIGKILL (no clean shutdown) and waits for it.
func (d *daemon) kill() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	d.cmd = nil
}

// stop stops the daemon (SIGTERM, then SIGKILL after 5 s) and removes its directory.
func (d *daemon) stop() {
	if d.cmd != nil {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
			d.cmd.Process.Signal(syscall.SIGKILL)
			<-d.done
		}
		d.cmd = nil
	}
	os.RemoveAll(d.dir)
}

func (d *daemon) logText() string {
	b, _ := os.ReadFile(d.log)
	return string(b)
}

// open opens a client of the shared daemon on namespace ns, closed at the end of the test.
func open(t testing.TB, ns string) *Client {
	t.Helper()
	c, err := Open(Options{Socket: testSocket, Namespace: ns})
	if err != nil {
		t.Fatalf("Open(%q): %v", ns, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually retries cond every 2 ms until it holds, failing the test after 20 s (a
// watchdog, not a timing assertion).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after 20 s: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
