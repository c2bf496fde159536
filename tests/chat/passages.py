"""Passages of the sample manual's kind that several chat tests quote, verify and answer from."""

from chat.quoting import QuotePassage


def passage(number: int, heading_path: str, body: str, similarity: float) -> QuotePassage:
    """A retrieved passage as the quote composer reads it."""
    return QuotePassage(number=number, heading_path=heading_path, body=body, similarity=similarity)


RELEASE_SITUATION = (
    "If the Aster has lost 12 V power - for example because the 12 V battery is completely "
    "discharged - the charge port door cannot be opened electrically and a plugged-in "
    "connector stays locked."
)
RELEASE_LEAD_IN = "In that situation, use the emergency release cable in the trunk:"
RELEASE_STEPS = [
    "1. Open the trunk. If the trunk will not open because the vehicle has no power, fold the "
    "left rear seatback forward from inside the cabin and reach into the trunk.",
    "2. On the left side of the trunk, just behind the left taillight, unclip the small "
    "rectangular cover in the trim panel.",
    "3. Find the loop of the release cable, marked with a yellow tag showing a plug symbol.",
    "Warning: Pull the release cable gently. Do not use tools or excessive force on the cable.",
    "4. Pull the release cable gently toward the front of the vehicle. The charge port door "
    "unlatches and, if a connector is plugged in, its lock releases.",
    "5. Open the charge port door by hand, or remove the connector from the inlet.",
]
