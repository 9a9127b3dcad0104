// The binding: see Context.swift, Socket.swift.
