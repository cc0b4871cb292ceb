package pgstore

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/livestore-go/livestore/syncserver"
)

// SQLSTATE codes the classification looks at.
const (
	readOnlyTransaction   = "25006" // read_only_sql_transaction
	insufficientPrivilege = "42501"
	tooManyConnections    = "53300"
)

func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// storageErr wraps a failure of op in a *syncserver.StorageError with the
// kind its SQLSTATE tells (see syncserver.WrapStorageError).
func storageErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return syncserver.WrapStorageError("pgstore: "+op, err, kindOf)
}

// kindOf: class 53 (insufficient resources: disk_full, out_of_memory,
// configuration_limit_exceeded) is a full storage, except
// too_many_connections, which is one of reaching it.
func kindOf(err error) syncserver.StorageErrorKind {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return syncserver.StorageUnavailable
	}
	switch {
	case pe.Code == readOnlyTransaction:
		return syncserver.StorageReadOnly
	case len(pe.Code) == 5 && pe.Code[:2] == "53" && pe.Code != tooManyConnections:
		return syncserver.StorageFull
	}
	return syncserver.StorageUnavailable
}
