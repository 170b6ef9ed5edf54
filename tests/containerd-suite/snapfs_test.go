// containerd's own snapshotter test suite (snapshots/testsuite, containerd 1.6) run against
// `snap snapshotter` through containerd's proxy client: every test case gets a snapshotter
// of its own, on a new store under the case's root. Run by tools/containerd-suite.
package snapfssuite

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/containerd/snapshots/proxy"
	"github.com/containerd/containerd/snapshots/testsuite"
	"google.golang.org/grpc"
)

func TestSnapfs(t *testing.T) {
	snap := os.Getenv("SNAP")
	if snap == "" {
		t.Fatal("SNAP must name the snap binary")
	}
	testsuite.SnapshotterSuite(t, "snapfs", func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
		return start(snap, root)
	})
}

// start runs `snap snapshotter` on a store under root and connects a proxy client to it.
func start(snap, root string) (snapshots.Snapshotter, func() error, error) {
	sock := filepath.Join(root, "snapfs.sock")
	log, err := os.Create(filepath.Join(root, "snapshotter.log"))
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(snap, "--root", filepath.Join(root, "store"), "snapshotter", "--address", sock)
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.Env = append(os.Environ(), "RUST_LOG=snapfs=debug")
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, nil, fmt.Errorf("the snapshotter did not listen on %s", sock)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The target names no host (an HTTP/2 :authority must not be a path); the dialer
	// connects to the socket, as containerd's own proxy client does.
	conn, err := grpc.Dial("passthrough:///localhost", grpc.WithInsecure(), grpc.WithContextDialer(
		func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}))
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, nil, err
	}
	sn := proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), "snapfs")
	stop := func() error {
		conn.Close()
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		log.Close()
		if dir := os.Getenv("SNAPFS_SUITE_LOGS"); dir != "" {
			if data, err := os.ReadFile(log.Name()); err == nil {
				os.WriteFile(filepath.Join(dir, filepath.Base(filepath.Dir(root))+".log"), data, 0644)
			}
		}
		// The mount daemons outlive the snapshotter by design: unmount what is left.
		unmountUnder(root)
		return nil
	}
	return sn, stop, nil
}

func unmountUnder(root string) {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var targets []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 1 && strings.HasPrefix(fields[1], root+"/") {
			targets = append(targets, fields[1])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(targets)))
	for _, target := range targets {
		syscall.Unmount(target, syscall.MNT_DETACH)
	}
}
