"""Local, faithful simulators of the four APIs (real HTTP servers on 127.0.0.1).

Each API is a class with a `handle(request)` method and an `advance(seconds)` clock step;
`sandbox.core` serves any of them over real sockets with a virtual clock and switchable faults.
"""
