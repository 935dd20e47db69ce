"""What can go wrong when starting, steering or operating a workflow."""

from __future__ import annotations


class WorkflowError(Exception):
    """Base class of the workflow package's errors."""


class WorkflowsNotLaunched(WorkflowError):
    """The durable runtime is not running in this process."""

    def __init__(self) -> None:
        super().__init__(
            "the workflow runtime is not launched in this process: call "
            "retailsync.workflows.runtime.launch_workflows(settings, ports) at start-up "
            "(the `retailsync serve` and `retailsync worker` commands do)"
        )


class PortsNotConfigured(WorkflowError):
    """A step needs an adapter that was not handed to the runtime."""

    def __init__(self, port: str) -> None:
        super().__init__(
            f"no {port} adapter is configured for workflows: pass it in WorkflowPorts("
            f"{port}=...) to launch_workflows (bootstrap picks the adapter from the settings)"
        )


class WorkflowNotFound(WorkflowError):
    """No workflow has this id."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(
            f"no workflow with id {workflow_id!r}; list them with `retailsync workflows list`"
        )
        self.workflow_id = workflow_id


class NotAwaitingApproval(WorkflowError):
    """An approve/reject arrived for a workflow that is not waiting for one."""

    def __init__(self, workflow_id: str, state: str) -> None:
        super().__init__(
            f"workflow {workflow_id} is {state!r}, not waiting for an approval; only a refund "
            "above the approval threshold waits for a person"
        )
        self.workflow_id = workflow_id
        self.state = state


class TakeoverRefused(WorkflowError):
    """An operator asked to hand over a worker's workflows in a way that cannot be safe."""


class NoReturnAwaitingReceipt(WorkflowError):
    """A warehouse receipt arrived for a return no workflow is waiting for."""

    def __init__(self, return_id: str) -> None:
        super().__init__(
            f"no return-to-refund workflow waits for a warehouse receipt of {return_id}: the "
            "return was not authorized through the hub, or it already ended; route the event "
            "to the exception queue"
        )
        self.return_id = return_id


class InvalidWarehouseReceipt(WorkflowError):
    """A warehouse receipt is neither a ``return.received`` nor a ``return.inspected``."""


class NoOrderAwaitingShipment(WorkflowError):
    """A shipment dispatch arrived for an order no fulfilment workflow is waiting for."""

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"no order-to-fulfilment workflow waits for a shipment of {order_id}: the order was "
            "not placed through the hub, or its fulfilment already ended"
        )
        self.order_id = order_id


class InvalidShipmentConfirmation(WorkflowError):
    """A shipment confirmation is not a ``shipment.dispatched`` event of that order."""


class InvalidOrderEvent(WorkflowError):
    """An ``order.created`` event does not carry a canonical order to fulfil."""
