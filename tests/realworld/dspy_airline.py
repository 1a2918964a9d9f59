"""DSPy agents with tools: the airline customer-service ``dspy.ReAct`` agent, and a custom tool loop.

Sources:
- ``DSPyAirlineCustomerService``: stanfordnlp/dspy, ``docs/docs/tutorials/customer_service_agent/index.ipynb``
  (https://dspy.ai/tutorials/customer_service_agent/) — the data models, the four databases, the seven tools
  (``fetch_flight_info``, ``fetch_itinerary``, ``pick_flight``, ``book_flight``, ``cancel_itinerary``,
  ``get_user_info``, ``file_ticket``) and the signature, unchanged; ``dspy.ReAct(signature, tools=[...])``.
- ``WeatherCalculator``: stanfordnlp/dspy, ``docs/docs/learn/programming/tools.md``, "Approach 2: Manual Tool
  Handling" — ``ToolSignature`` with ``tools: list[dspy.Tool]`` and ``outputs: dspy.ToolCalls``, each call
  run with ``call.execute(...)``; wrapped in a ``dspy.Module`` so it can be watched, and the calculator
  evaluates ``a op b`` instead of calling ``eval`` (the docs' own note).

Adapted only to run offline: the LM is :class:`tests.realworld.fakes.RuleLM`, which reads the request and
the ReAct trajectory and picks the next tool the way the tutorial's transcript shows GPT-4o-mini doing.
The tutorial's ids come from the global ``random`` (``_generate_id``), as in the source.

Self-modification (the positive control for "no spurious change"): after 10 requests the operator hot-fixes
the ReAct agent's instructions in place (``agent.react.signature = ...with_instructions(...)``), a runtime
edit driftwatch must record once, on component ``react``, kind ``instructions``, source ``runtime``.
"""

from __future__ import annotations

import json
import operator
import random
import re
import string
from typing import Any

import dspy
from pydantic import BaseModel

from tests.realworld.fakes import DSPyPrompt, RuleLM

# -- the tutorial's data model, databases and tools (unchanged) ----------------------------------------------


class Date(BaseModel):
    # Somehow LLM is bad at specifying `datetime.datetime`, so
    # we define a custom class to represent the date.
    year: int
    month: int
    day: int
    hour: int


class UserProfile(BaseModel):
    user_id: str
    name: str
    email: str


class Flight(BaseModel):
    flight_id: str
    date_time: Date
    origin: str
    destination: str
    duration: float
    price: float


class Itinerary(BaseModel):
    confirmation_number: str
    user_profile: UserProfile
    flight: Flight


class Ticket(BaseModel):
    user_request: str
    user_profile: UserProfile


user_database: dict[str, UserProfile] = {}
flight_database: dict[str, Flight] = {}
itinerary_database: dict[str, Itinerary] = {}
ticket_database: dict[str, Ticket] = {}


def reset_databases() -> None:
    """The tutorial's initial data (each run starts from it)."""
    user_database.clear()
    flight_database.clear()
    itinerary_database.clear()
    ticket_database.clear()
    for uid, name in enumerate(("Adam", "Bob", "Chelsie", "David"), 1):
        user_database[name] = UserProfile(user_id=str(uid), name=name, email=f"{name.lower()}@gmail.com")
    for fid, dest, day, hour, duration, price in (("DA123", "JFK", (2025, 9, 1), 1, 3, 200),
                                                  ("DA125", "JFK", (2025, 9, 1), 7, 9, 500),
                                                  ("DA456", "SNA", (2025, 10, 1), 1, 2, 100),
                                                  ("DA460", "SNA", (2025, 10, 1), 9, 2, 120)):
        flight_database[fid] = Flight(flight_id=fid, origin="SFO", destination=dest,
                                      date_time=Date(year=day[0], month=day[1], day=day[2], hour=hour),
                                      duration=duration, price=price)


def fetch_flight_info(date: Date, origin: str, destination: str):  # as in the tutorial
    """Fetch flight information from origin to destination on the given date"""
    flights = []

    for _flight_id, flight in flight_database.items():
        if (
            flight.date_time.year == date.year
            and flight.date_time.month == date.month
            and flight.date_time.day == date.day
            and flight.origin == origin
            and flight.destination == destination
        ):
            flights.append(flight)
    if len(flights) == 0:
        raise ValueError("No matching flight found!")
    return flights


def fetch_itinerary(confirmation_number: str):  # as in the tutorial
    """Fetch a booked itinerary information from database"""
    return itinerary_database.get(confirmation_number)


def pick_flight(flights: list[Flight]):  # as in the tutorial
    """Pick up the best flight that matches users' request. we pick the shortest, and cheaper one on ties."""
    sorted_flights = sorted(
        flights,
        key=lambda x: (
            x.get("duration") if isinstance(x, dict) else x.duration,
            x.get("price") if isinstance(x, dict) else x.price,
        ),
    )
    return sorted_flights[0]


def _generate_id(length=8):  # as in the tutorial
    chars = string.ascii_lowercase + string.digits
    return "".join(random.choices(chars, k=length))


def book_flight(flight: Flight, user_profile: UserProfile):  # as in the tutorial
    """Book a flight on behalf of the user."""
    confirmation_number = _generate_id()
    while confirmation_number in itinerary_database:
        confirmation_number = _generate_id()
    itinerary_database[confirmation_number] = Itinerary(
        confirmation_number=confirmation_number,
        user_profile=user_profile,
        flight=flight,
    )
    return confirmation_number, itinerary_database[confirmation_number]


def cancel_itinerary(confirmation_number: str, user_profile: UserProfile):  # as in the tutorial
    """Cancel an itinerary on behalf of the user."""
    if confirmation_number in itinerary_database:
        del itinerary_database[confirmation_number]
        return
    raise ValueError("Cannot find the itinerary, please check your confirmation number.")


def get_user_info(name: str):  # as in the tutorial
    """Fetch the user profile from database with given name."""
    return user_database.get(name)


def file_ticket(user_request: str, user_profile: UserProfile):  # as in the tutorial
    """File a customer support ticket if this is something the agent cannot handle."""
    ticket_id = _generate_id(length=6)
    ticket_database[ticket_id] = Ticket(
        user_request=user_request,
        user_profile=user_profile,
    )
    return ticket_id


TOOLS = [fetch_flight_info, fetch_itinerary, pick_flight, book_flight, cancel_itinerary, get_user_info, file_ticket]


class DSPyAirlineCustomerService(dspy.Signature):
    """You are an airline customer service agent that helps user book and manage flights.

    You are given a list of tools to handle user request, and you should decide the right tool to use in order to
    fulfill users' request."""

    user_request: str = dspy.InputField()
    process_result: str = dspy.OutputField(
        desc=(
                "Message that summarizes the process result, and the information users need, e.g., the "
                "confirmation_number if a new flight is booked."
            )
        )


def airline_agent() -> dspy.ReAct:
    return dspy.ReAct(DSPyAirlineCustomerService, tools=list(TOOLS))


# -- the LM's rule: what a capable model does with these tools --------------------------------------------------

_NAME = re.compile(r"my name is (\w+)")
_BOOK = re.compile(r"from (\w{3}) to (\w{3}) on (\d\d)/(\d\d)/(\d{4})")
_CONF = re.compile(r"itinerary (\w{8})")


_ITEM = re.compile(r"«([^»]*)»")
_ATTR = re.compile(r"(\w+)=(?:'([^']*)'|(Date\([^)]*\))|([-\d.]+))")


def _pydantic_repr(text: str) -> dict[str, Any]:
    """``flight_id='DA123' date_time=Date(year=2025, ...) duration=3.0`` (how ChatAdapter shows a list item)."""
    out: dict[str, Any] = {}
    for key, quoted, date, number in _ATTR.findall(text):
        if date:
            out[key] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", date)}
        elif quoted or not number:
            out[key] = quoted
        else:
            out[key] = float(number)
    return out


def _observation(text: str) -> Any:
    if items := _ITEM.findall(text):
        return [_pydantic_repr(item) for item in items]
    try:
        return json.loads(text)
    except ValueError:
        return text


def _steps(p: DSPyPrompt) -> list[tuple[str, Any]]:
    out = []
    i = 0
    while f"tool_name_{i}" in p.inputs:
        out.append((p.inputs[f"tool_name_{i}"], _observation(p.inputs.get(f"observation_{i}", ""))))
        i += 1
    return out


def _plan(request: str, steps: list[tuple[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The next tool and its arguments, from the request and the observations so far."""
    done = dict(steps)
    name = _NAME.search(request)
    if name and "get_user_info" not in done:
        return "get_user_info", {"name": name.group(1)}
    profile = done.get("get_user_info")
    if any(isinstance(v, str) and "Execution error" in v for _, v in steps):
        return "finish", {}
    if (booking := _BOOK.search(request)) and "book" in request:
        origin, dest, month, day, year = booking.groups()
        if "fetch_flight_info" not in done:
            date = {"year": int(year), "month": int(month), "day": int(day), "hour": 0}
            return "fetch_flight_info", {"date": date, "origin": origin, "destination": dest}
        if "pick_flight" not in done:
            return "pick_flight", {"flights": done["fetch_flight_info"]}
        if "book_flight" not in done:
            return "book_flight", {"flight": done["pick_flight"], "user_profile": profile}
        return "finish", {}
    conf = _CONF.search(request)
    if conf and "cancel" in request:
        if "cancel_itinerary" not in done:
            return "cancel_itinerary", {"confirmation_number": conf.group(1), "user_profile": profile}
        return "finish", {}
    if conf:
        if "fetch_itinerary" not in done:
            return "fetch_itinerary", {"confirmation_number": conf.group(1)}
        return "finish", {}
    if "file_ticket" not in done and profile:
        return "file_ticket", {"user_request": request, "user_profile": profile}
    return "finish", {}


def _result(request: str, steps: list[tuple[str, Any]]) -> str:
    done = dict(steps)
    errors = [v for _, v in steps if isinstance(v, str) and "Execution error" in v]
    if errors:
        return "Sorry, I could not complete the request: no matching flight was found."
    if "book_flight" in done:
        conf, itinerary = done["book_flight"]
        flight = itinerary["flight"]
        return (f"Your flight {flight['flight_id']} from {flight['origin']} to {flight['destination']} is booked; "
                f"confirmation number {conf}.")
    if "cancel_itinerary" in done:
        return "Your itinerary has been cancelled."
    if "fetch_itinerary" in done:
        it = done["fetch_itinerary"]
        return f"Your itinerary: flight {it['flight']['flight_id']}." if isinstance(it, dict) else "No such itinerary."
    if "file_ticket" in done:
        return f"A support ticket {done['file_ticket']} has been filed; a colleague will contact you."
    return "How else can I help?"


def airline_rule(p: DSPyPrompt) -> dict[str, Any]:
    request = p.inputs.get("user_request", "")
    steps = _steps(p)
    if "next_tool_name" in p.outputs:
        tool, args = _plan(request, steps)
        return {"next_thought": f"Next: {tool}.", "next_tool_name": tool, "next_tool_args": args}
    return {"reasoning": "Summarize what the tools did.", "process_result": _result(request, steps)}


def request(i: int, confirmations: list[str]) -> str:
    """The ``i``-th request of the scenario (it needs the confirmation numbers handed out so far)."""
    names = ("Adam", "Bob", "Chelsie", "David")
    name = names[i % 4]
    kind = i % 5
    if kind in (0, 3):
        dest, date = (("JFK", "09/01/2025"), ("SNA", "10/01/2025"))[i % 2]
        return f"please help me book a flight from SFO to {dest} on {date}, my name is {name}"
    if kind == 1 and confirmations:
        return f"what is on my itinerary {confirmations[-1]}?"
    if kind == 2 and confirmations:
        return f"please cancel my itinerary {confirmations.pop(0)}, my name is {name}"
    if kind == 4 and i % 2:
        return f"please help me book a flight from SFO to LAX on 09/01/2025, my name is {name}"
    return f"my luggage did not arrive on my last trip, my name is {name}"


AIRLINE = "airline-support"
HOTFIX = " Always fetch the user's profile before acting on their behalf."


def airline_scenario(watched: bool, notes: dict[str, Any]) -> list[Any]:
    """22 customer requests; after the 10th the operator hot-fixes the agent's instructions."""
    import driftwatch

    reset_databases()
    confirmations: list[str] = []
    out = []
    with dspy.context(lm=RuleLM(airline_rule)):
        agent = airline_agent()
        if watched:
            agent = driftwatch.watch(agent, agent=AIRLINE)
        for i in range(22):
            if i == 10:
                agent.react.signature = agent.react.signature.with_instructions(
                    agent.react.signature.instructions + HOTFIX)
            result = agent(user_request=request(i, confirmations))
            confirmations += re.findall(r"confirmation number (\w{8})", result.process_result)
            out.append(result)
    notes["tools"] = [t for r in out for k, t in r.trajectory.items() if k.startswith("tool_name_") and t != "finish"]
    return out


# -- the custom tool loop (dspy.Tool / dspy.ToolCalls) -------------------------------------------------------------

class ToolSignature(dspy.Signature):
    """Signature for manual tool handling."""

    question: str = dspy.InputField()
    tools: list[dspy.Tool] = dspy.InputField()
    outputs: dspy.ToolCalls = dspy.OutputField()


def weather(city: str) -> str:
    """Get weather information for a city."""
    return f"The weather in {city} is sunny"


_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def calculator(expression: str) -> str:
    """Evaluate a mathematical expression."""
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([-+*/])\s*(-?\d+(?:\.\d+)?)\s*", expression)
    if not m:
        return "Invalid expression"
    return f"The result is {_OPS[m.group(2)](float(m.group(1)), float(m.group(3))):g}"


class WeatherCalculator(dspy.Module):
    """The docs' manual tool handling, as a module: one prediction, then each tool call executed."""

    def __init__(self) -> None:
        super().__init__()
        self.tools = {"weather": dspy.Tool(weather), "calculator": dspy.Tool(calculator)}
        self.predictor = dspy.Predict(ToolSignature)

    def forward(self, question: str) -> dspy.Prediction:
        response = self.predictor(question=question, tools=list(self.tools.values()))
        results = [call.execute(functions=list(self.tools.values())) for call in response.outputs.tool_calls]
        return dspy.Prediction(answer=" ".join(str(r) for r in results) or "No tool was needed.")


_CITY = re.compile(r"weather (?:in|like in) ([A-Z][a-z]+(?: [A-Z][a-z]+)?)")
_MATH = re.compile(r"(-?\d+(?:\.\d+)?) ?([-+*/]) ?(-?\d+(?:\.\d+)?)")


def tools_rule(p: DSPyPrompt) -> dict[str, Any]:
    q = p.inputs.get("question", "")
    calls = []
    if city := _CITY.search(q):
        calls.append({"name": "weather", "args": {"city": city.group(1)}})
    if math := _MATH.search(q):
        calls.append({"name": "calculator", "args": {"expression": "".join(math.groups())}})
    return {"outputs": {"tool_calls": calls}}


TOOL_LOOP = "weather-calculator"
CITIES = ("New York", "Lisbon", "Tokyo", "Oslo", "Nairobi", "Lima", "Perth")


def tool_loop_questions() -> list[str]:
    out = []
    for i in range(21):
        city, a, b = CITIES[i % len(CITIES)], 3 + i, 7 + 2 * i
        out.append((f"What's the weather in {city}?", f"What is {a} * {b}?",
                    f"What's the weather in {city}, and what is {a} + {b}?")[i % 3])
    out.append("Tell me a joke.")
    return out


def tool_loop_scenario(watched: bool, notes: dict[str, Any]) -> list[Any]:
    """22 questions; after the 10th the operator adds a demo to the predictor (a runtime edit)."""
    import driftwatch

    out = []
    with dspy.context(lm=RuleLM(tools_rule)):
        program = WeatherCalculator()
        if watched:
            program = driftwatch.watch(program, agent=TOOL_LOOP)
        for i, q in enumerate(tool_loop_questions()):
            if i == 10:
                program.predictor.demos = [dspy.Example(question="What's the weather in Rome?",
                                                        outputs={"tool_calls": [{"name": "weather",
                                                                                 "args": {"city": "Rome"}}]})]
            out.append(program(question=q))
    notes["tools"] = [name for q in tool_loop_questions() for name, rx in (("weather", _CITY), ("calculator", _MATH))
                      if rx.search(q)]
    return out
