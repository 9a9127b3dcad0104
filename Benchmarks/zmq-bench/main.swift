print("zmq-bench: placeholder")
