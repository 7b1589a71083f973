"""An ASGI app that joins the bus from its lifespan: ``uvicorn lifespan_app:app``.

For a single uvicorn process.  uvicorn needs nothing to be stopped well
(with ``--workers`` too): its SIGTERM is a graceful stop, and shutdownbus
sends it at once to a child that never joins.  Joining lets a parent wait
for the app to be ready, and the report show it as a member; as with
gunicorn, the stop becomes uvicorn's own SIGTERM, so its graceful shutdown
(lifespan ``shutdown`` included) runs as usual.
"""

import os
import signal

import shutdownbus


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if shutdownbus.join(interrupt_main=False):
                    shutdownbus.on_stop(lambda reason: os.kill(os.getpid(), signal.SIGTERM))
                await send({"type": "lifespan.startup.complete"})
                shutdownbus.ready()
            elif message["type"] == "lifespan.shutdown":
                print("lifespan: shutdown ran", flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello\n"})
