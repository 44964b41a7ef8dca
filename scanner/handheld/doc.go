// Package handheld reads codes from handheld and fixed QR readers, the sources vaorad's gate reads besides the
// camera. Each source's Next returns one code as text, a payload.Reason for a read it rejects (too long, not UTF-8),
// or io.EOF when a replay ends.
//
//   - Serial (serial:/dev/ttyACM0): a reader in serial (USB-CDC, "USB-COM") mode sends UTF-8 bytes. They are framed
//     on CR, LF or CR LF, or, from readers that send no line end, on a silence (short after a CCCD-shaped code,
//     longer otherwise); bytes that are not UTF-8 are read as Windows-1258 where the site configured that fallback.
//   - Evdev (evdev:/dev/input/by-id/...-event-kbd): a reader in keyboard mode, read from its input event device,
//     held alone so its keys never reach a console, and turned back into text through the reader's keyboard layout,
//     ALT codes included. A wedge typing in a US layout cannot type Vietnamese letters; the payload parser spots the
//     damage (reader_keyboard_mode) and tells the operator to switch the reader to serial mode.
//   - LineReader (stdin): a keyboard wedge typing into the terminal.
//
// Serial and Evdev outlive their reader: one that is missing or unplugged is reported in the log and opened again by
// its path, so a udev name follows it. Memory is bounded whatever a reader sends. Code contents are never logged:
// they are personal data.
package handheld
