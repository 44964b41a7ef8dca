// Command vaoractl is the operator's tool. Today: `vaoractl demo`, which runs a hub and one device on this machine.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

const usage = `usage: vaoractl COMMAND [flags]

commands:
  demo    run a hub (embedded broker and database) and one device reading codes typed or pasted here
  outbox  the device's store of scans waiting for the hub: stats, salvage (vaoractl outbox help)
  decode  read the QR codes in image files with the device's decoder (vaoractl decode --help)
  keys    generate and show the hub's and devices' keys; open sealed values (vaoractl keys help)
  parse   read codes' text, one per line on stdin, as the device does: one JSON result per line (vaoractl parse --help)
  pass    issue and verify vaora passes, signed codes for people without an app or a card (vaoractl pass help)
  provision      mint a one-time enrolment code (QR) for a blank device, on the hub (vaoractl provision --help)
  factory-reset  make a device blank again, keeping its unsynced entries (vaoractl factory-reset --help)
  status  ask the running vaorad how it is: backlog, broker, last scan, stop list, storage, clock (vaoractl status --help)
`

type usageError struct{ error }

func main() {
	err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	var ue usageError
	switch {
	case err == nil:
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "vaoractl:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "vaoractl:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{errors.New("no command given")}
	}
	switch args[0] {
	case "demo":
		return demo(args[1:], stdin, stdout, stderr)
	case "outbox":
		return outboxCmd(args[1:], stdout, stderr)
	case "decode":
		return decodeCmd(args[1:], stdout, stderr)
	case "keys":
		return keysCmd(args[1:], stdin, stdout, stderr)
	case "parse":
		return parseCmd(args[1:], stdin, stdout, stderr)
	case "pass":
		return passCmd(args[1:], stdout, stderr)
	case "provision":
		return provisionCmd(args[1:], stdout, stderr)
	case "factory-reset":
		return factoryResetCmd(args[1:], stdout, stderr)
	case "status":
		return statusCmd(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Errorf("unknown command %q", args[0])}
	}
}
