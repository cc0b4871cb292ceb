//go:build !unix

package harness

import (
	"os"
	"os/exec"
)

// Without process groups only the direct child can be stopped.

var (
	termSignal = os.Kill
	killSignal = os.Kill
)

func setProcessGroup(*exec.Cmd) {}

func signalGroup(cmd *exec.Cmd, sig os.Signal) {
	if cmd.Process != nil {
		_ = cmd.Process.Signal(sig)
	}
}
