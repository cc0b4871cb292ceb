package pgstore

// The classification of PostgreSQL errors, for the external tests.
var (
	IsCode     = isCode
	StorageErr = storageErr
)

// ReadOnlyTransaction is the SQLSTATE of a write in a read-only transaction.
const ReadOnlyTransaction = readOnlyTransaction
