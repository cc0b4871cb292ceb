// Package examples holds no code of its own: its test runs the README's
// quick start as a newcomer would, from the README's own commands, with the
// todo and web examples. The examples are the programs in the directories
// below it: todo (a todo list on the command line), reactor (a server-side
// client that answers events with events), confirmed (exactly-once
// reactions to confirmed events) and web (a browser app of the JavaScript
// LiveStore, not Go, syncing through the Go server).
package examples
