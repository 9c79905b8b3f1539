# No __init__.py in twisted/plugins: Twisted discovers this file by path.
from twisted.application.service import ServiceMaker

cosmic = ServiceMaker(
    "Cosmic Gardener",
    "cosmic.tap",
    "The Cosmic Gardener game daemon (WebSocket game, REST API, metrics).",
    "cosmic",
)
