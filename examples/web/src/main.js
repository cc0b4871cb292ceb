import { makePersistedAdapter } from '@livestore/adapter-web'
import LiveStoreSharedWorker from '@livestore/adapter-web/shared-worker?sharedworker'
import { createStorePromise, nanoid, queryDb } from '@livestore/livestore'
import LiveStoreWorker from './livestore.worker.js?worker'
import { events, schema, tables } from './schema.js'

const adapter = makePersistedAdapter({
  storage: { type: 'opfs' },
  worker: LiveStoreWorker,
  sharedWorker: LiveStoreSharedWorker,
})

// The same store id as examples/todo's default (--store todos).
const store = await createStorePromise({ adapter, schema, storeId: 'todos' })

// The list as examples/todo shows it: not deleted, by text.
const visible$ = queryDb(tables.todos.where({ deletedAt: null }).orderBy('text', 'asc'), { label: 'visible' })

const list = document.querySelector('#todos')
store.subscribe(visible$, (todos) => {
  list.replaceChildren(
    ...todos.map((todo) => {
      const item = document.createElement('li')
      item.dataset.id = todo.id
      item.className = todo.completed ? 'done' : ''

      const check = document.createElement('input')
      check.type = 'checkbox'
      check.checked = todo.completed
      check.disabled = todo.completed
      check.addEventListener('change', () => store.commit(events.todoCompleted({ id: todo.id })))

      const text = document.createElement('span')
      text.textContent = todo.text

      const remove = document.createElement('button')
      remove.textContent = '×'
      remove.title = 'Delete'
      remove.addEventListener('click', () => store.commit(events.todoDeleted({ id: todo.id, deletedAt: new Date() })))

      item.append(check, text, remove)
      return item
    }),
  )
  document.querySelector('#count').textContent = `${todos.length} todos`
})

document.querySelector('#add').addEventListener('submit', (event) => {
  event.preventDefault()
  const input = event.target.elements.text
  const text = input.value.trim()
  if (text === '') return
  // Go's todo uses 8 hex digits; any unique string works as an id.
  store.commit(events.todoCreated({ id: nanoid(8), text }))
  input.value = ''
})

document.body.dataset.ready = 'true'
